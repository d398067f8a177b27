"""Signals read as series: the range each query asks, the finding an anomalous one
makes, and evidence bounded to what a chart needs."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from contracts.evidence import MAX_POINTS, SeriesEvidence
from streams.correlation.model import IncidentFacts
from streams.correlation.prometheus import Series
from streams.correlation.signals import bounded, confidence, judge, query_range_of, split
from streams.correlation.window import analysis_window
from foundation.settings import CorrelationSettings, Signal

ANCHOR = datetime(2024, 5, 1, 12, 0, 30, tzinfo=UTC)
INCIDENT = IncidentFacts(uuid.UUID("00000000-0000-4000-8000-000000000001"), "checkout", ANCHOR)
WINDOW = analysis_window(INCIDENT, CorrelationSettings(window="10m", settle="10m", baseline="24h"),
                         now=ANCHOR + timedelta(days=1))
LATENCY = Signal(query="q", worse="up")


def _series(value_at, step_s: int = 60, labels: dict | None = None) -> Series:
    start, _ = query_range_of(WINDOW, step_s)
    samples, moment = [], start
    while moment <= WINDOW.end:
        samples.append((moment, value_at(moment)))
        moment += timedelta(seconds=step_s)
    return Series(labels or {}, tuple(samples))


def _normal_then_slow(moment: datetime) -> float:
    wobble = 0.01 * (int(moment.timestamp()) // 60 % 5)
    return 0.2 + wobble if moment < ANCHOR - timedelta(minutes=2) else 1.5


def test_the_range_starts_on_the_step_and_covers_baseline_and_window() -> None:
    start, step = query_range_of(WINDOW, 60)
    assert step == 60 and start.timestamp() % 60 == 0
    assert WINDOW.baseline_start - timedelta(seconds=60) < start <= WINDOW.baseline_start
    _, widened = query_range_of(WINDOW, 1)  # 24h20m at 1 s would be 87,600 points
    assert widened == 8 and (WINDOW.end - WINDOW.baseline_start).total_seconds() / widened <= 11_000


def test_split_at_the_window_start_drops_what_is_not_a_number() -> None:
    series = _series(lambda m: float("nan") if m.minute == 3 else 1.0)
    baseline, inside = split(series.samples, WINDOW)
    assert all(t < WINDOW.start for t, _ in baseline) and all(WINDOW.start <= t <= WINDOW.end for t, _ in inside)
    assert len(inside) == 19 and all(v == 1.0 for _, v in baseline + inside)  # 20 steps, 12:03 NaN


def test_an_anomalous_signal_is_a_finding_naming_service_and_signal() -> None:
    finding = judge("db", "latency", LATENCY, 'latency{service="db"}', [_series(_normal_then_slow)], WINDOW, 60,
                    "http://prom/graph?g0.expr=x")
    assert finding is not None
    assert (finding.service, finding.signal, finding.kind, finding.key) == ("db", "latency", "latency", "db")
    assert finding.changed_at == ANCHOR - timedelta(seconds=90)  # the first step at 1.5
    assert finding.anomaly is not None and finding.anomaly.anomalous
    assert 0.5 < finding.confidence < 1 and finding.summary.startswith("db: latency up to 1.5 (0.22 usually")
    evidence = SeriesEvidence.model_validate(finding.evidence)
    assert evidence.query == 'latency{service="db"}' and evidence.link == "http://prom/graph?g0.expr=x"
    assert evidence.window == WINDOW.interval() and evidence.baseline == WINDOW.baseline_interval()
    assert evidence.anchor == ANCHOR and evidence.anomaly.peak == 1.5 and evidence.anomaly.typical == 0.22
    assert len(evidence.values) == MAX_POINTS  # 1,460 points over 24h20m, bounded


def test_a_normal_signal_or_one_better_than_usual_is_no_finding() -> None:
    assert judge("db", "latency", LATENCY, "q", [_series(lambda m: 0.2)], WINDOW, 60, "") is None
    faster = _series(lambda m: 0.2 if m < WINDOW.start else 0.01)
    assert judge("db", "latency", LATENCY, "q", [faster], WINDOW, 60, "") is None
    fewer_errors_is_good = Signal(query="q", worse="down")
    assert judge("db", "availability", fewer_errors_is_good, "q", [_series(_normal_then_slow)], WINDOW, 60, "") is None


def test_the_worst_of_several_series_is_kept() -> None:
    calm, slow = _series(lambda m: 0.2, labels={"pod": "a"}), _series(_normal_then_slow, labels={"pod": "b"})
    finding = judge("db", "latency", LATENCY, "q", [calm, slow], WINDOW, 60, "")
    assert finding is not None
    assert finding.evidence["labels"] == {"pod": "b"} and finding.evidence["series"] == 2


def test_evidence_keeps_the_whole_window_and_the_baseline_thinned() -> None:
    t0 = WINDOW.start
    baseline = [(t0 - timedelta(minutes=i), 1.0) for i in range(1440, 0, -1)]
    inside = [(t0 + timedelta(minutes=i), 2.0) for i in range(20)]
    kept = bounded(baseline, inside)
    assert len(kept) == MAX_POINTS and kept[-20:] == inside
    assert kept[0][0] - baseline[0][0] < timedelta(minutes=6)  # it still spans the baseline
    assert kept[-21] == baseline[-1]  # and reaches the window's edge
    assert [t for t, _ in kept] == sorted(t for t, _ in kept)


def test_a_window_longer_than_half_the_room_is_thinned_too() -> None:
    inside = [(WINDOW.start + timedelta(seconds=i), float(i)) for i in range(1000)]
    kept = bounded([(WINDOW.start - timedelta(seconds=1), 0.0)] * 3, inside)
    assert len(kept) <= MAX_POINTS and kept[-1] == inside[-1]
    assert bounded([], [(WINDOW.start, 1.0)]) == [(WINDOW.start, 1.0)]


def test_confidence_is_half_at_the_edge_of_anomalous() -> None:
    assert confidence(0) == 0 and confidence(3.0) == 0.5
    assert confidence(10) < confidence(100) <= 0.99
