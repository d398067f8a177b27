"""Turn findings into ranked hypotheses (SPEC §4).

Findings that point at the same kind of cause (a deploy or restart, crashing pods, an
error spike...) form one hypothesis, whatever source saw them; agreement between
sources raises its confidence. Then the order: among credible hypotheses (confidence at
least `CREDIBLE`), what changed first ranks first — a deploy at 10:02 is a better
explanation of errors from 10:03 than the errors themselves. Ties, and hypotheses whose
change time is unknown (listed after the timed ones), go by confidence. Hypotheses below
`CREDIBLE` follow, in the same order.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from datetime import datetime
from typing import Any, Protocol
from uuid import UUID

CREDIBLE = 0.5

CATEGORY = {
    "restarts": "change", "deploys": "change", "rollout": "change",
    "crash_loop": "crash", "oom_killed": "crash", "container_restarts": "crash",
    "pods_not_ready": "crash", "warning_events": "crash",
    "error_rate": "errors", "log_errors": "errors", "error_patterns": "errors",
    "latency_p95": "latency", "saturation": "saturation", "request_rate": "traffic",
}
"""Which cause a finding kind points at; a kind not listed is a cause of its own."""

TITLE = {
    "change": "A deploy or restart", "crash": "Pods crashing or not ready",
    "errors": "An error spike", "latency": "A latency increase",
    "saturation": "Resource saturation", "traffic": "A traffic change",
}


class RecordedFinding(Protocol):
    """What ranking reads of a finding: RecordFinding commands and FindingRecorded
    events both fit."""

    @property
    def finding_id(self) -> UUID: ...
    @property
    def source(self) -> str: ...
    @property
    def kind(self) -> str: ...
    @property
    def summary(self) -> str: ...
    @property
    def confidence(self) -> float: ...
    @property
    def changed_at(self) -> datetime | None: ...


def combined_confidence(findings: Iterable[RecordedFinding]) -> float:
    """Independent sources agreeing: 1 − Π(1 − best confidence of each source), at most 0.99.

    Several findings of one source are not independent, so only its best one counts."""
    best: dict[str, float] = {}
    for finding in findings:
        best[finding.source] = max(best.get(finding.source, 0.0), finding.confidence)
    doubt = 1.0
    for value in best.values():
        doubt *= 1 - value
    return round(min(1 - doubt, 0.99), 3)


def rank(findings: Iterable[RecordedFinding], incident_start: datetime) -> list[dict[str, Any]]:
    """Hypotheses, best first: {rank, summary, confidence, finding_ids, sources,
    changed_at, category, relative_to_start_s}."""
    groups: dict[str, list[RecordedFinding]] = defaultdict(list)
    for finding in findings:
        groups[CATEGORY.get(finding.kind, finding.kind)].append(finding)
    hypotheses = [_hypothesis(category, members, incident_start) for category, members in groups.items()]
    hypotheses.sort(key=_order)
    for position, hypothesis in enumerate(hypotheses, start=1):
        hypothesis["rank"] = position
        if hypothesis["changed_at"] is not None:
            hypothesis["changed_at"] = hypothesis["changed_at"].isoformat()
    return hypotheses


def _hypothesis(category: str, members: list[RecordedFinding], start: datetime) -> dict[str, Any]:
    members = sorted(members, key=lambda f: (-f.confidence, f.source, f.kind))
    best = members[0]
    sources = sorted({f.source for f in members})
    changed = [f.changed_at for f in members if f.changed_at is not None]
    changed_at = min(changed) if changed else None
    summary = f"{TITLE.get(category, category.replace('_', ' ').capitalize())}: {best.summary}"
    if len(sources) > 1:
        summary += f" (seen by {', '.join(sources)})"
    return {
        "rank": 0,
        "summary": summary,
        "confidence": combined_confidence(members),
        "finding_ids": [str(f.finding_id) for f in members],
        "sources": sources,
        "changed_at": changed_at,
        "category": category,
        "relative_to_start_s": None if changed_at is None else round((changed_at - start).total_seconds(), 3),
    }


def _order(hypothesis: dict[str, Any]) -> tuple[Any, ...]:
    changed_at: datetime | None = hypothesis["changed_at"]
    return (
        hypothesis["confidence"] < CREDIBLE,
        changed_at is None,
        changed_at.timestamp() if changed_at is not None else 0.0,
        -hypothesis["confidence"],
        hypothesis["category"],
    )
