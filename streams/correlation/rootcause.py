"""Rank suspect services across the service graph (pure; SPEC §14).

Input: what the sources found, each finding naming its service and signal (with the
series statistics of `anomaly.assess` when it came from a series), the service graph
as caller → callees, and the symptom service. Output: `Hypothesis` models, best first.
Deterministic: the same input gives the same ranking.

Principle: an anomalous service none of whose dependencies' anomalies explains it
ranks first; stronger anomalies and earlier changes rank higher.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from contracts.hypotheses import Hypothesis
from streams.correlation.anomaly import Anomaly

Graph = Mapping[str, Sequence[str]]
"""caller → the services it calls."""


@dataclass(frozen=True)
class Evidence:
    """One finding as ranking sees it."""

    finding_id: UUID
    source: str
    service: str
    signal: str
    confidence: float
    summary: str = ""
    changed_at: datetime | None = None
    anomaly: Anomaly | None = None


def paths_to(graph: Graph, symptom: str, max_depth: int) -> dict[str, list[str]]:
    """Each service reachable from `symptom` through callees within `max_depth` hops,
    with its path suspect → … → symptom (shortest, ties by name)."""
    paths = {symptom: [symptom]}
    queue = deque([(symptom, 0)])
    while queue:
        service, depth = queue.popleft()
        if depth >= max_depth:
            continue
        for callee in sorted(graph.get(service, ())):
            if callee not in paths:
                paths[callee] = [callee, *paths[service]]
                queue.append((callee, depth + 1))
    return paths


def rank_causes(evidence: Sequence[Evidence], graph: Graph, symptom: str,
                max_depth: int = 3) -> list[Hypothesis]:
    """Hypotheses, best first: one per suspect service (its strongest signal)."""
    paths = paths_to(graph, symptom, max_depth)
    by_service: dict[str, list[Evidence]] = {}
    for item in evidence:
        by_service.setdefault(item.service, []).append(item)

    def strength(item: Evidence) -> float:
        return item.anomaly.score if item.anomaly is not None else 10 * item.confidence

    anomalous = {s for s, items in by_service.items()
                 if any(i.anomaly is None or i.anomaly.anomalous for i in items)}

    def explained(service: str) -> bool:
        return any(callee in anomalous for callee in graph.get(service, ()))

    suspects = sorted(
        anomalous,
        key=lambda s: (explained(s), -max(strength(i) for i in by_service[s]), s))
    hypotheses = []
    for position, service in enumerate(suspects, start=1):
        items = sorted(by_service[service], key=lambda i: (-strength(i), i.signal, str(i.finding_id)))
        best = items[0]
        hypotheses.append(Hypothesis(
            rank=position, service=service, signal=best.signal,
            confidence=round(min(max(best.confidence, 0.0), 1.0), 3),
            path=paths.get(service, [service, symptom] if service != symptom else [service]),
            started_at=min((i.changed_at for i in items if i.changed_at), default=None),
            evidence=[i.finding_id for i in items], summary=best.summary,
            sources=sorted({i.source for i in items})))
    return hypotheses
