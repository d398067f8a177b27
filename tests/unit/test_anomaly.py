"""One signal's departure from its baseline: direction, robust scale, level shifts, impact."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import pytest

from streams.correlation.anomaly import ANOMALOUS, MIN_BASELINE, Observation, assess

STEP = timedelta(minutes=5)
WINDOW_START = datetime(2024, 5, 1, 10, 0, tzinfo=UTC)


def series(values, start):
    return [(start + i * STEP, v) for i, v in enumerate(values)]


def observe(baseline, window, worse="up", best=None, volume=()):
    base = series(baseline, WINDOW_START - len(baseline) * STEP)
    return Observation("svc", "latency", worse, base, series(window, WINDOW_START), best,
                       series(volume, WINDOW_START))


NOISY = [0.100 + 0.004 * math.sin(i) for i in range(48)]  # 100 ms ± 4 ms


@pytest.mark.parametrize(("worse", "window", "anomalous", "sign"), [
    ("up", [0.30, 0.40], True, 1),      # slower: worse
    ("up", [0.02, 0.01], False, -1),    # faster: better, not anomalous
    ("down", [0.02, 0.01], True, 1),    # a drop where down is worse
    ("down", [0.30, 0.40], False, -1),
])
def test_direction_decides_what_is_worse(worse, window, anomalous, sign) -> None:
    a = assess(observe(NOISY, window, worse))
    assert a.anomalous is anomalous
    assert (a.score >= ANOMALOUS) is anomalous
    assert math.copysign(1, a.delta) == sign
    assert a.score >= 0


def test_delta_peak_start_and_peak_time_of_a_latency_rise() -> None:
    a = assess(observe(NOISY, [0.10, 0.101, 0.25, 0.40, 0.35]))
    assert a.baseline == pytest.approx(0.1, abs=0.003)
    assert a.peak == pytest.approx(0.40)
    assert a.delta == pytest.approx(0.40 - a.baseline)
    assert a.started_at == WINDOW_START + 2 * STEP   # the first anomalous sample
    assert a.peak_at == WINDOW_START + 3 * STEP


def test_missing_and_nan_values_are_ignored() -> None:
    baseline = [v if i % 5 else math.nan for i, v in enumerate(NOISY)]
    with_gaps = assess(observe(baseline, [math.nan, 0.10, math.inf, 0.40]))
    clean = assess(observe([v for v in baseline if not math.isnan(v)], [0.10, 0.40]))
    assert with_gaps.score == pytest.approx(clean.score)
    assert with_gaps.peak == pytest.approx(0.40)
    assert with_gaps.started_at == WINDOW_START + 3 * STEP


@pytest.mark.parametrize(("baseline", "window"), [
    ([0.1] * (MIN_BASELINE - 1), [5.0]),            # too few baseline samples
    ([math.nan] * 50 + [0.1] * 2, [5.0]),           # enough samples, too few finite
    (NOISY, []),                                     # nothing in the window
    (NOISY, [math.nan, math.nan]),
])
def test_too_little_to_judge_scores_zero(baseline, window) -> None:
    a = assess(observe(baseline, window))
    assert a.score == 0 and not a.anomalous and a.started_at is None and a.impact is None


def test_a_flat_availability_baseline_still_has_a_finite_scale() -> None:
    flat = [100.0] * 48
    drop = assess(observe(flat, [100.0, 100.0, 97.0, 96.0], worse="down", best=100.0))
    steady = assess(observe(flat, [100.0, 100.0, 100.0], worse="down", best=100.0))
    assert drop.anomalous and math.isfinite(drop.score)
    assert drop.delta == pytest.approx(4.0)
    assert steady.score == 0 and not steady.anomalous


def test_dips_the_baseline_has_seen_score_lower_than_unprecedented_ones() -> None:
    flat = [100.0] * 48
    dipping = [100.0 if i % 4 else 98.0 for i in range(48)]  # MAD 0, mean deviation not
    window = [100.0, 97.0]
    on_flat = assess(observe(flat, window, worse="down", best=100.0))
    on_dipping = assess(observe(dipping, window, worse="down", best=100.0))
    assert on_dipping.score < on_flat.score
    assert on_dipping.anomalous  # 3 points is still well beyond 2-point dips one step in four


def test_a_small_relative_change_on_a_tight_baseline_is_a_level_shift() -> None:
    tight = [2.000 + 0.001 * math.sin(i) for i in range(48)]  # ± 1 ms around 2 s
    shifted = assess(observe(tight, [2.10, 2.10, 2.11]))      # +5 %: z ≈ 100 without a floor
    fault = assess(observe(tight, [2.10, 3.5, 4.0]))          # +100 %
    assert not shifted.anomalous
    assert fault.anomalous
    assert fault.score > shifted.score


def test_availability_level_is_measured_from_its_ideal_value() -> None:
    near_perfect = [99.9 + 0.01 * math.sin(i) for i in range(48)]
    # From 99.9 % to 99.0 % is ten times the errors: a fault, even though it is under 1 %
    # of the value; measured from 0 instead of 100 it would be a level shift.
    assert assess(observe(near_perfect, [99.9, 99.0], worse="down", best=100.0)).anomalous
    assert not assess(observe(near_perfect, [99.9, 99.0], worse="down", best=0.0)).anomalous
    # Unknown ideal for a signal worse going down: no level floor, the baseline decides.
    assert assess(observe(near_perfect, [99.9, 99.0], worse="down")).anomalous


def test_latency_gets_its_level_floor_without_being_told_its_ideal() -> None:
    tight = [2.000 + 0.001 * math.sin(i) for i in range(48)]
    assert assess(observe(tight, [2.10])) == assess(observe(tight, [2.10], best=0.0))


def test_impact_weights_the_excess_by_the_requests_of_its_step() -> None:
    a = assess(observe(NOISY, [0.10, 0.30, 0.50], volume=[100, 200, 40]))
    # Step 2: 0.2 s extra × 200 requests = 40 s; step 3: 0.4 s × 40 = 16 s.
    assert a.impact == pytest.approx(0.2 * 200, rel=0.03)
    assert a.volume == 100
    assert assess(observe(NOISY, [0.10, 0.30, 0.50])).impact is None


def test_a_step_without_a_request_count_takes_the_typical_count() -> None:
    obs = observe(NOISY, [0.10, 0.30], volume=[50])  # no count at the second step
    assert assess(obs).impact == pytest.approx(0.2 * 50, rel=0.03)
