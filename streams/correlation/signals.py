"""Signals read as series: the query of each, and what its values say (pure).

For every service a run examines, each configured signal (`correlation.prometheus.signals`)
is one `query_range` over the baseline and the analysis window. `judge` splits the values
at the window's start, asks `anomaly.assess` how far the window departs from the
baseline, and makes a finding of an anomalous signal, its evidence a `SeriesEvidence`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from contracts.evidence import MAX_POINTS, AnomalyNumbers, SeriesEvidence
from streams.correlation.anomaly import ANOMALOUS, Anomaly, Observation, Sample, assess
from streams.correlation.model import Finding
from streams.correlation.templates import escape_label_value, render
from streams.correlation.window import Window
from foundation.settings import PrometheusSource as PrometheusSettings
from foundation.settings import Signal

if TYPE_CHECKING:
    from streams.correlation.prometheus import Series

RANGE_LIMIT = 11_000  # Prometheus refuses query ranges of more points than this


def signal_queries(settings: PrometheusSettings, service: str) -> dict[str, str]:
    """Each configured signal's template rendered for `service`: {signal: PromQL}."""
    values = {"label": settings.service_label, "service": escape_label_value(service),
              "window": settings.window}
    return {name: render(signal.query, **values) for name, signal in settings.signals.items()}


def query_range_of(window: Window, step_s: float) -> tuple[datetime, float]:
    """(start, step) of the range query covering baseline and window: the start on a
    multiple of the step (the same incident always asks the same instants), the step
    widened if the range would hold more points than Prometheus allows."""
    span = (window.end - window.baseline_start).total_seconds()
    step = max(step_s, math.ceil(span / RANGE_LIMIT))
    start = math.floor(window.baseline_start.timestamp() / step) * step
    return datetime.fromtimestamp(start, UTC), step


def split(samples: Sequence[Sample], window: Window) -> tuple[list[Sample], list[Sample]]:
    """(baseline, window) samples: before the window's start, and from it to its end."""
    finite = [(t, v) for t, v in samples if math.isfinite(v) and t <= window.end]
    return ([s for s in finite if s[0] < window.start], [s for s in finite if s[0] >= window.start])


def bounded(baseline: Sequence[Sample], inside: Sequence[Sample], limit: int = MAX_POINTS) -> list[Sample]:
    """At most `limit` samples for the evidence: the window's (thinned evenly only if it
    alone has more than half the room, its worst point always kept) after the baseline
    thinned evenly into the room left, so a chart still spans the whole baseline."""
    inside = list(inside)
    if len(inside) > limit // 2:
        inside = _thinned(inside, limit // 2)
    room = limit - len(inside)
    return _thinned(list(baseline), room) + inside


def _thinned(samples: list[Sample], room: int) -> list[Sample]:
    if len(samples) <= room:
        return samples
    if room <= 0:
        return []
    # Evenly spaced picks that always include the last sample (nearest the window).
    picks = {len(samples) - 1 - round(i * (len(samples) - 1) / max(room - 1, 1)) for i in range(room)}
    return [samples[i] for i in sorted(picks)]


def confidence(score: float) -> float:
    """0 for nothing unusual, 0.5 at the edge of anomalous, toward 1 as the score grows."""
    return round(min(score / (score + ANOMALOUS), 0.99), 3) if score > 0 else 0.0


def describe(service: str, name: str, signal: Signal, anomaly: Anomaly) -> str:
    """One line: which way the signal moved, to what, against what is usual."""
    direction = "up" if signal.worse == "up" else "down"
    typical = "no usual value" if anomaly.baseline is None else f"{anomaly.baseline:.4g} usually"
    # A baseline that never varied has (next to) no spread to measure the change by.
    size = f"{anomaly.score:.1f}× the baseline's spread" if anomaly.score < 1e6 else "the baseline never varied"
    return f"{service}: {name} {direction} to {anomaly.peak:.4g} ({typical}; {size})"


def judge(service: str, name: str, signal: Signal, query: str, series: Sequence[Series], window: Window,
          step_s: float, link: str, volume: Sequence[Sample] = ()) -> Finding | None:
    """A finding when the worst of `series` is anomalous in the window, else None."""
    assessed = []
    for one in series:
        baseline, inside = split(one.samples, window)
        anomaly = assess(Observation(service, name, signal.worse, baseline, inside, best=signal.best, volume=volume))
        assessed.append((anomaly.score, one, baseline, inside, anomaly))
    if not assessed:
        return None
    _, worst, baseline, inside, anomaly = max(assessed, key=lambda item: item[0])
    if not anomaly.anomalous or anomaly.peak is None:
        return None
    evidence = SeriesEvidence(
        query=query, service=service, signal=name, worse=signal.worse, window=window.interval(),
        baseline=window.baseline_interval(), anchor=window.anchor, step_s=step_s, labels=dict(worst.labels),
        series=len(series), values=[(t.timestamp(), v) for t, v in bounded(baseline, inside)],
        anomaly=AnomalyNumbers(score=anomaly.score, delta=anomaly.delta, typical=anomaly.baseline,
                               peak=anomaly.peak, started_at=anomaly.started_at),
        link=link)
    return Finding(kind=name, summary=describe(service, name, signal, anomaly),
                   confidence=confidence(anomaly.score), evidence=evidence.model_dump(mode="json"),
                   changed_at=anomaly.started_at, key=service, service=service, signal=name, anomaly=anomaly)
