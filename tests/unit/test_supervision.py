"""How long `warroom up` waits before restarting a child that died."""

from __future__ import annotations

from warroom.supervision import Backoff


def test_the_delay_doubles_with_each_crash_in_a_row_up_to_a_ceiling() -> None:
    backoff = Backoff(base_s=0.5, max_s=30, healthy_s=60)
    assert [backoff.after_crash(ran_for_s=1) for _ in range(9)] == [0.5, 1, 2, 4, 8, 16, 30, 30, 30]


def test_a_healthy_run_resets_the_delay() -> None:
    backoff = Backoff(base_s=0.5, max_s=30, healthy_s=60)
    for _ in range(8):
        backoff.after_crash(ran_for_s=2)
    assert backoff.after_crash(ran_for_s=59.9) == 30
    assert backoff.after_crash(ran_for_s=60) == 0.5  # it had served for a healthy minute
    assert backoff.after_crash(ran_for_s=3) == 1
