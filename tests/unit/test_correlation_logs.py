"""Log lines masked into patterns, and error counts judged against a baseline."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from harness.replay_servers import recording
from streams.correlation import loki
from streams.correlation.prometheus import Series
from foundation.settings import LokiSource

T0 = datetime(2024, 5, 1, 9, 46, tzinfo=UTC)


@pytest.mark.parametrize(("line", "pattern"), [
    ("took 250ms for 3 items", "took <n>ms for <n> items"),
    ("request 7b4a1c9e-2f3d-4e5a-9b6c-0d1e2f3a4b5c failed", "request <uuid> failed"),
    ("dial tcp 10.244.3.7:8443: i/o timeout", "dial tcp <ip>: i/o timeout"),
    ("segfault at 0x7f3a9c0041d0", "segfault at <hex>"),
    ("trace 4bf92f3577b34da6a3ce929d0e0e4736 done", "trace <hex> done"),
    ("ts=2024-05-01T10:00:40.118Z level=error", "ts=<ts> level=error"),
    ("at 2024-05-01 10:00:40,118 ERROR", "at <ts> ERROR"),
    ("  user42   logged\tout ", "user<n> logged out"),
    ("deadbeef is a word, cafe too", "deadbeef is a word, cafe too"),  # hex-looking words without digits stay
])
def test_mask(line: str, pattern: str) -> None:
    assert loki.mask(line) == pattern


def test_lines_differing_only_in_ids_fall_together() -> None:
    body = recording("loki", "error_lines.json")
    lines = [line for _, line in loki.parse_streams(body, "{app=\"checkout\"}")]
    patterns = loki.top_patterns(lines, limit=5)
    assert [p.count for p in patterns] == [4, 2, 2, 1]
    top = patterns[0]
    assert top.template == ('level=error ts=<ts> msg="payment authorization failed" order_id=<n> '
                            'upstream=<ip> err="context deadline exceeded after <n>ms"')
    assert top.sample.startswith("level=error ts=2024-05-01T10:00:40.118Z")  # newest first
    assert loki.top_patterns(lines, limit=2) == patterns[:2]


def test_streams_are_merged_newest_first() -> None:
    lines = loki.parse_streams(recording("loki", "error_lines.json"), "q")
    assert len(lines) == 9
    assert [t for t, _ in lines] == sorted((t for t, _ in lines), reverse=True)


def test_a_metric_answer_where_lines_were_expected_is_refused() -> None:
    with pytest.raises(Exception, match="expected log lines"):
        loki.parse_streams(recording("loki", "errors.json"), "q")


def test_counts_on_the_step_grid_fill_missing_steps_with_zero() -> None:
    series = Series({}, ((T0 + timedelta(minutes=2), 5.0), (T0 + timedelta(minutes=3), 7.0)))
    grid = loki.per_step([series], T0, T0 + timedelta(minutes=4), 60)
    assert [v for _, v in grid] == [0, 0, 5, 7, 0]


def test_rise_start_is_the_latest_rise() -> None:
    counts = [(T0 + timedelta(minutes=i), v) for i, v in enumerate([0, 1, 0, 0, 40, 90, 120])]
    assert loki.rise_start(counts, 0.5) == T0 + timedelta(minutes=4)
    assert loki.rise_start([(T0, 50.0), (T0 + timedelta(minutes=1), 60.0)], 0.5) is None


@pytest.mark.parametrize(("current", "baseline", "stands_out"), [
    (371, 4, True), (9, 0, False), (10, 0, True), (20, 10, False), (21, 10, True),
])
def test_errors_stand_out_against_the_baseline(current: float, baseline: float, stands_out: bool) -> None:
    assert loki.errors_stand_out(current, baseline, LokiSource()) is stands_out


def test_confidence_rises_with_the_margin() -> None:
    settings = LokiSource()
    assert loki.confidence(10, 0, settings) == 0.5
    assert loki.confidence(40, 0, settings) == 0.9
    assert 0.5 < loki.confidence(25, 0, settings) < 0.9
