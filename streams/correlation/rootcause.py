"""Rank suspect services across the service graph (pure; SPEC §14).

Input: what the sources found, each finding naming its service and signal (with the
series statistics of `anomaly.assess` when it came from a series), the service graph
as caller → callees, and the symptom service. Output: `Hypothesis` models, best first.
Deterministic: the same input gives the same ranking (ties broken by name).

The method, and why. A fault in a service shows in that service and travels up to its
callers, never down to its callees; on the way it keeps its kind (a slow callee makes
its callers slow, a failing one makes them fail) and it can only shrink, since a
caller's requests add their own work and spread over other callees too. So:

1. **Explanation by magnitude.** An anomalous callee *explains* an anomalous caller in
   the same signal when its excess accounts for at least `EXPLAINS` of the caller's,
   measured as impact (extra seconds waited or failed requests per step: what the
   requests suffered, so a quiet service's large relative jump cannot account for a
   busy caller's trouble) or, without request counts, in the signal's own unit; and
   when its change was under way by the caller's worst moment (temporal precedence:
   the moment whose excess it must account for). A finding without a
   series (a deploy, a restart, log errors) explains any anomalous caller that did not
   start before it.
2. **Reach.** A suspect accounts for the anomalous services it reaches upward through
   explaining edges. The symptom's alert says the symptom is anomalous even when the
   window shows little; a suspect that reaches the symptom explains the incident.
3. **Root.** A suspect that an anomalous callee explains is an effect, not a cause.

Order: suspects that reach the symptom and that nothing explains; then the symptom
itself when nothing explains it; then the rest. Within each group, the share of the
upstream anomaly accounted for (Σ over reached services of the fraction of each one's
excess the suspect matches) ranks first, then the earlier change, then the stronger
score, then the name.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from contracts.hypotheses import Hypothesis
from streams.correlation.anomaly import ANOMALOUS, Anomaly

Graph = Mapping[str, Sequence[str]]
"""caller → the services it calls."""

ALERT = "alert"
"""The signal named for the symptom when neither the alert nor a finding names one."""

EXPLAINS = 0.5
"""A callee explains its caller when its excess is at least this share of the
caller's: half of the caller's trouble is what the callee did."""


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


@dataclass(frozen=True)
class _Node:
    """One anomalous signal of one service (or a finding without a series)."""

    service: str
    signal: str
    score: float
    mass: float | None          # impact, else delta; None for a finding without series
    unit_is_impact: bool
    started_at: datetime | None
    peak_at: datetime | None
    evidence: tuple[Evidence, ...]

    def share_of(self, other: _Node) -> float:
        """How much of `other`'s excess this node's excess matches (0..1)."""
        if self.mass is None:
            return 1.0
        if other.mass is None or other.mass <= 0:
            return 1.0
        if self.unit_is_impact != other.unit_is_impact:
            return 0.0
        return min(1.0, self.mass / other.mass)


def _strength(item: Evidence) -> float:
    if item.anomaly is not None:
        return item.anomaly.score
    return ANOMALOUS * 2 * min(max(item.confidence, 0.0), 1.0)


def _nodes(evidence: Sequence[Evidence], symptom: str, symptom_signal: str | None) -> dict[tuple[str, str], _Node]:
    grouped: dict[tuple[str, str], list[Evidence]] = {}
    for item in evidence:
        grouped.setdefault((item.service, item.signal), []).append(item)
    nodes = {}
    for key, items in grouped.items():
        items.sort(key=lambda i: (-_strength(i), str(i.finding_id)))
        best = items[0]
        alerted = key == (symptom, symptom_signal)
        if best.anomaly is None:
            if _strength(best) < ANOMALOUS and not alerted:
                continue
            nodes[key] = _Node(*key, _strength(best), None, False, best.changed_at, best.changed_at,
                               tuple(items))
            continue
        a = best.anomaly
        if not (a.anomalous or alerted):
            continue
        impact = a.impact is not None
        mass = max(a.impact if impact else a.delta, 0.0)
        started = a.started_at or best.changed_at
        nodes[key] = _Node(*key, a.score, mass, impact, started, a.peak_at or started, tuple(items))
    if symptom_signal is not None and (symptom, symptom_signal) not in nodes:
        nodes[(symptom, symptom_signal)] = _Node(symptom, symptom_signal, 0.0, 0.0, False, None, None, ())
    if not any(service == symptom for service, _ in nodes):
        nodes[(symptom, ALERT)] = _Node(symptom, ALERT, 0.0, 0.0, False, None, None, ())
    return nodes


def _likeliest_signal(evidence: Sequence[Evidence], symptom: str) -> str | None:
    """The symptom's signal that departs most from its baseline: what the alert most
    likely fired on when it does not say."""
    scored = [(i.anomaly.score, i.signal) for i in evidence
              if i.service == symptom and i.anomaly is not None and i.anomaly.delta > 0]
    return max(scored, key=lambda item: (item[0], item[1]))[1] if scored else None


def _not_after(cause: _Node, effect: _Node) -> bool:
    """The cause's change was under way by the effect's worst moment (the moment whose
    excess the cause must account for)."""
    return cause.started_at is None or effect.peak_at is None or cause.started_at <= effect.peak_at


def rank_causes(evidence: Sequence[Evidence], graph: Graph, symptom: str,
                max_depth: int = 3, symptom_signal: str | None = None,
                explains: float = EXPLAINS) -> list[Hypothesis]:
    """Hypotheses, best first: one per service with an anomalous finding (its best
    signal), plus the symptom. `symptom_signal` names the alert's signal (the symptom
    then counts as anomalous in it whatever the window shows); when the alert does not
    say, it is the symptom's signal that departs most from its baseline."""
    paths = paths_to(graph, symptom, max_depth)
    if symptom_signal is None:
        symptom_signal = _likeliest_signal(evidence, symptom)
    nodes = _nodes(evidence, symptom, symptom_signal)
    callers: dict[str, list[str]] = {}
    for caller, callees in graph.items():
        for callee in callees:
            callers.setdefault(callee, []).append(caller)

    def explains_edge(cause: _Node, effect: _Node) -> bool:
        same = cause.mass is None or cause.signal == effect.signal
        return same and _not_after(cause, effect) and cause.share_of(effect) >= explains

    def upward(node: _Node) -> list[_Node]:
        found = []
        for caller in sorted(callers.get(node.service, ())):
            for key in sorted(k for k in nodes if k[0] == caller):
                if explains_edge(node, nodes[key]):
                    found.append(nodes[key])
        return found

    reach: dict[tuple[str, str], dict[tuple[str, str], float]] = {}
    via: dict[tuple[str, str], dict[tuple[str, str], tuple[str, str]]] = {}
    for key, node in nodes.items():
        # Bottleneck share along the best explaining path to every service reached.
        shares = {key: 1.0}
        parent: dict[tuple[str, str], tuple[str, str]] = {}
        frontier = [key]
        while frontier:
            current = frontier.pop(0)
            for up in upward(nodes[current]):
                upkey = (up.service, up.signal)
                share = min(shares[current], node.share_of(up))
                if share > shares.get(upkey, -1.0):
                    shares[upkey] = share
                    parent[upkey] = current
                    frontier.append(upkey)
        reach[key], via[key] = shares, parent

    symptom_keys = [k for k in nodes if k[0] == symptom]

    def reaches_symptom(key: tuple[str, str]) -> bool:
        return any(s in reach[key] for s in symptom_keys)

    def explained(key: tuple[str, str]) -> bool:
        node = nodes[key]
        return any(explains_edge(nodes[k], node) for k in nodes
                   if k[0] in graph.get(node.service, ()))

    def accounted(key: tuple[str, str]) -> float:
        return sum(share for k, share in reach[key].items() if k != key)

    def order(key: tuple[str, str]) -> tuple:
        node = nodes[key]
        if key[0] == symptom:
            group = 1 if not any(explained(k) for k in symptom_keys) else 3
        elif reaches_symptom(key) and not explained(key):
            group = 0
        elif key[0] in paths:
            group = 2
        else:
            group = 4
        started = node.started_at.timestamp() if node.started_at else math.inf
        return (group, -round(accounted(key), 9), started, -node.score, key[0], key[1])

    best_per_service: dict[str, tuple[str, str]] = {}
    for key in sorted(nodes, key=order):
        best_per_service.setdefault(key[0], key)
    ranked = sorted(best_per_service.values(), key=order)

    hypotheses = []
    for position, key in enumerate(ranked, start=1):
        node = nodes[key]
        items = sorted((i for i in evidence if i.service == key[0]),
                       key=lambda i: (-_strength(i), i.signal, str(i.finding_id)))
        hypotheses.append(Hypothesis(
            rank=position, service=key[0], signal=key[1],
            confidence=_confidence(node, reach[key], symptom_keys, explained(key)),
            path=_path(key, via[key], symptom_keys, paths, symptom),
            started_at=node.started_at,
            evidence=[i.finding_id for i in items],
            summary=_summary(node, items),
            sources=sorted({i.source for i in items})))
    return hypotheses


def _path(key, parent, symptom_keys, paths, symptom) -> list[str]:
    """The explaining chain suspect → … → symptom when there is one, else the shortest
    path through the graph."""
    target = next((s for s in symptom_keys if s in parent or s == key), None)
    if target is not None:
        chain = [target]
        while chain[-1] != key:
            chain.append(parent[chain[-1]])
        return [k[0] for k in reversed(chain)]
    if key[0] in paths:
        return paths[key[0]]
    return [key[0], symptom] if key[0] != symptom else [key[0]]


def _confidence(node: _Node, reached, symptom_keys, is_explained: bool) -> float:
    """How sure: significance (score / (score + ANOMALOUS)), times the share of the
    symptom's excess accounted for, halved when a callee explains the suspect."""
    significance = node.score / (node.score + ANOMALOUS) if node.score > 0 else 0.0
    share = max((reached.get(s, 0.0) for s in symptom_keys), default=0.0)
    value = significance * (0.5 + 0.5 * share) * (0.5 if is_explained else 1.0)
    return round(min(max(value, 0.0), 1.0), 3)


def _summary(node: _Node, items: list[Evidence]) -> str:
    best = next((i for i in items if i.signal == node.signal), items[0] if items else None)
    if best is not None and best.summary:
        return best.summary
    if best is not None and best.anomaly is not None and best.anomaly.baseline is not None:
        a = best.anomaly
        return f"{node.signal} {a.peak:.4g} against a typical {a.baseline:.4g} (score {a.score:.1f})"
    return f"{node.signal} on {node.service}"
