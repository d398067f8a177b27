"""A finding's evidence as a chart (SPEC §16): what of it is drawn, and the deploys and
restarts of the same service its run found, drawn as marks (`projections.history.series_chart`
draws).

The one renderer of these charts: the gateway serves its SVG to the dashboard
(`GET /v1/incidents/{id}/findings/{finding_id}/chart`) and `warroom postmortem -o` writes
the same files beside the document. Evidence of a signal read as a series is the JSON of
`SeriesEvidence` (`values`, `window`, `baseline`, `anchor`, `anomaly`…); any other
evidence (older findings, logs, Kubernetes objects) has no chart: `series_of` says None.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from projections.history.series_chart import Mark, Series, draw

CHANGE_KINDS: Mapping[str, str] = {
    "deploys": "deploy", "deploy": "deploy", "rollout": "deploy",
    "restarts": "restart", "container_restarts": "restart", "crash_loop": "restart",
}
"""Findings (by signal, else kind) that mark a moment on the charts of their service."""


@dataclass(frozen=True)
class FindingFacts:
    """What a chart needs of a finding, from a read-model row or a postmortem's finding."""

    finding_id: str
    kind: str
    evidence: Mapping[str, Any]
    changed_at: datetime | None = None
    service: str | None = None
    signal: str | None = None

    @classmethod
    def of(cls, finding: Mapping[str, Any] | Any) -> FindingFacts:
        get = finding.get if isinstance(finding, Mapping) else lambda key: getattr(finding, key, None)
        evidence = get("evidence")
        evidence = evidence if isinstance(evidence, Mapping) else {}
        changed = get("changed_at")
        return cls(finding_id=str(get("finding_id")), kind=str(get("kind") or ""), evidence=evidence,
                   changed_at=changed if isinstance(changed, datetime) else _instant(changed),
                   service=_text(get("service")) or _text(evidence.get("service")),
                   signal=_text(get("signal")) or _text(evidence.get("signal")))


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _instant(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _seconds(value: Any) -> float | None:
    moment = value if isinstance(value, datetime) else _instant(value)
    return None if moment is None else moment.timestamp()


def _interval(value: Any) -> tuple[float, float] | None:
    """An ISO 8601 `start/end` interval in unix seconds."""
    if not isinstance(value, str) or value.count("/") != 1:
        return None
    start, end = (_seconds(part) for part in value.split("/"))
    return (start, end) if start is not None and end is not None and start < end else None


def _finite(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def series_of(evidence: Mapping[str, Any]) -> Series | None:
    """The series in `evidence`, or None when it holds none to draw (fewer than two
    finite points: free-form evidence of older findings, logs, Kubernetes objects)."""
    values = evidence.get("values")
    if not isinstance(values, list):
        return None
    points = []
    for pair in values:
        if isinstance(pair, (list, tuple)) and len(pair) == 2:
            t, v = _finite(pair[0]), _finite(pair[1])
            if t is not None and v is not None:
                points.append((t, v))
    points.sort()
    if len(points) < 2 or points[0][0] == points[-1][0]:
        return None
    anomaly = evidence.get("anomaly") if isinstance(evidence.get("anomaly"), Mapping) else {}
    step = _finite(evidence.get("step_s"))
    return Series(
        service=_text(evidence.get("service")), signal=_text(evidence.get("signal")) or "value",
        worse="down" if evidence.get("worse") == "down" else "up", points=tuple(points),
        window=_interval(evidence.get("window")), baseline=_interval(evidence.get("baseline")),
        anchor=_seconds(evidence.get("anchor")), step_s=step if step and step > 0 else None,
        typical=_finite(anomaly.get("typical")), peak=_finite(anomaly.get("peak")),
        change=_seconds(anomaly.get("started_at")))


def change_kind(finding: FindingFacts) -> str | None:
    """"deploy" or "restart" when `finding` is about one, else None."""
    return CHANGE_KINDS.get(finding.signal or "") or CHANGE_KINDS.get(finding.kind)


def marks_for(finding: FindingFacts, others: Iterable[FindingFacts]) -> list[Mark]:
    """The deploys and restarts among `others` (the findings of the same run) that
    concern the service of `finding`, oldest first."""
    if finding.service is None:
        return []
    marks = {}
    for other in others:
        what = change_kind(other)
        if what is None or other.finding_id == finding.finding_id or other.service != finding.service:
            continue
        at = _seconds(other.changed_at) or _seconds((other.evidence.get("anomaly") or {}).get("started_at")
                                                    if isinstance(other.evidence.get("anomaly"), Mapping) else None)
        if at is not None:
            marks[(what, at)] = Mark(what, at, other.finding_id)
    return sorted(marks.values(), key=lambda m: (m.at, m.what))


def has_chart(finding: FindingFacts) -> bool:
    return series_of(finding.evidence) is not None


def chart(finding: FindingFacts, others: Iterable[FindingFacts] = ()) -> str | None:
    """The SVG chart of `finding`, with the deploys and restarts among `others`; None
    when its evidence holds no series."""
    series = series_of(finding.evidence)
    if series is None:
        return None
    return draw(series, marks_for(finding, others), service=finding.service or series.service,
                finding_id=finding.finding_id)
