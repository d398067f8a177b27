"""Evidence of a finding about a signal read as a series, shaped as the Prometheus source
writes it (a `SeriesEvidence`, as JSON): a calm baseline, then a window whose values turn
bad at a chosen moment."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from contracts.evidence import AnomalyNumbers, SeriesEvidence


def series_evidence(service: str, signal: str, *, anchor: datetime, typical: float, bad: float,
                    worse: str = "up", step_s: float = 15.0, window_s: float = 600.0, baseline_s: float = 3600.0,
                    bad_from_s: float = 420.0, baseline_points: int = 120) -> dict[str, Any]:
    """`signal` of `service` at `typical` over the baseline (thinned to `baseline_points`)
    and the window up to `bad_from_s` into it, then at `bad`; the window ends at `anchor`
    plus a fifth of its length, as a run's settle lets in."""
    start = anchor - timedelta(seconds=window_s * 0.8)
    end = anchor + timedelta(seconds=window_s * 0.2)
    baseline_start = start - timedelta(seconds=baseline_s)
    wobble = (1.0, 1.04, 0.97, 1.02, 0.99, 1.03, 0.96)
    values: list[tuple[float, float]] = []
    spacing = baseline_s / baseline_points
    for i in range(baseline_points):
        values.append((baseline_start.timestamp() + i * spacing, typical * wobble[i % len(wobble)]))
    steps = int(window_s // step_s)
    changed = None
    for i in range(steps + 1):
        t = start.timestamp() + i * step_s
        turned = i * step_s >= bad_from_s
        if turned and changed is None:
            changed = t
        values.append((t, (bad if turned else typical) * wobble[i % len(wobble)]))
    peak = max(v for _, v in values) if worse == "up" else min(v for _, v in values)
    return SeriesEvidence(
        query=f'{signal}{{service="{service}"}}', service=service, signal=signal, worse=worse,
        window=f"{_iso(start)}/{_iso(end)}", baseline=f"{_iso(baseline_start)}/{_iso(start)}",
        anchor=anchor, step_s=step_s, labels={"service": service}, series=1, values=values,
        anomaly=AnomalyNumbers(score=25.0, delta=abs(peak - typical), typical=typical, peak=peak,
                               started_at=None if changed is None else datetime.fromtimestamp(changed, UTC)),
        link=f"http://prometheus.example/graph?g0.expr={signal}").model_dump(mode="json")


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")
