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
   that is the moment whose excess it must account for; 5-minute steps are too coarse
   to demand that it start strictly first). A finding without a series (a deploy, a
   restart, log errors) at confidence ½ or more explains any anomalous caller whose
   worst moment it did not follow.
2. **Reach.** A suspect accounts for the anomalous services it reaches upward through
   explaining edges, within `max_depth` hops of the symptom. The alert says the symptom
   is anomalous even when the window shows little; a suspect that reaches the symptom
   explains the incident.
3. **Root.** A suspect that an anomalous callee explains is an effect, not a cause.

Order, in groups: (0) suspects that reach the symptom and that nothing explains;
(1) the symptom itself when nothing explains it and a finding is about it; (2) the other
anomalous services within reach (independent trouble, or effects); (3) the symptom when a
callee explains it, or when nothing but the alert is about it (it is known to be
affected, so it says least about the cause); (4) services beyond `max_depth`. With no
finding at all there is no hypothesis. Within a group: the upstream anomaly accounted for (Σ over the services
reached of the share of each one's excess the suspect matches) first, then the earlier
change, then the stronger score, then the name.
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

Key = tuple[str, str]
"""(service, signal)."""

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
    """One anomalous signal of one service, a finding without a series, or the
    symptom's alerted signal."""

    service: str
    signal: str
    score: float
    delta: float | None         # excess in the signal's unit; None: a finding without a series
    impact: float | None        # excess × requests, when the request count is known
    started_at: datetime | None
    peak_at: datetime | None
    alerted: bool = False

    def share_of(self, other: _Node) -> float:
        """How much of `other`'s excess this node's excess matches (0..1): in impact
        when both have one, else in the signal's unit. A finding without a series
        matches anything."""
        if self.delta is None or other.delta is None:
            return 1.0
        if self.impact is not None and other.impact is not None:
            mine, theirs = self.impact, other.impact
        else:
            mine, theirs = self.delta, other.delta
        return 1.0 if theirs <= 0 else min(1.0, max(mine, 0.0) / theirs)


def _strength(item: Evidence) -> float:
    """A series finding's score; for a finding without a series, its confidence on the
    same scale (a confidence of ½ is just anomalous)."""
    if item.anomaly is not None:
        return item.anomaly.score
    return ANOMALOUS * 2 * min(max(item.confidence, 0.0), 1.0)


def _node(key: Key, best: Evidence, alerted: bool) -> _Node | None:
    a = best.anomaly
    if a is None:
        if _strength(best) < ANOMALOUS and not alerted:
            return None
        return _Node(*key, _strength(best), None, None, best.changed_at, best.changed_at, alerted)
    if not (a.anomalous or alerted):
        return None
    started = a.started_at or best.changed_at
    return _Node(*key, a.score, max(a.delta, 0.0), a.impact, started, a.peak_at or started, alerted)


def _nodes(evidence: Sequence[Evidence], symptom: str, symptom_signal: str | None) -> dict[Key, _Node]:
    """The anomalous (service, signal) pairs, each from its strongest finding, and the
    symptom: in its alerted signal whatever the window shows, or as `ALERT`."""
    grouped: dict[Key, list[Evidence]] = {}
    for item in evidence:
        grouped.setdefault((item.service, item.signal), []).append(item)
    nodes = {}
    for key, items in grouped.items():
        best = min(items, key=lambda i: (-_strength(i), str(i.finding_id)))
        node = _node(key, best, alerted=key == (symptom, symptom_signal))
        if node is not None:
            nodes[key] = node
    alerted = (symptom, symptom_signal or ALERT)
    if alerted not in nodes and (symptom_signal is not None or not any(k[0] == symptom for k in nodes)):
        nodes[alerted] = _Node(*alerted, 0.0, 0.0, None, None, None, alerted=True)
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
    say, it is the symptom's signal that departs most from its baseline. `explains` is
    the share of a caller's excess a callee must match to explain it."""
    if not evidence:
        return []  # nothing was found: no hypothesis, rather than the bare symptom
    paths = paths_to(graph, symptom, max_depth)
    if symptom_signal is None:
        symptom_signal = _likeliest_signal(evidence, symptom)
    nodes = _nodes(evidence, symptom, symptom_signal)
    by_service: dict[str, list[Key]] = {}
    for key in sorted(nodes):
        if key[0] in paths:  # beyond `max_depth`, a service explains nothing
            by_service.setdefault(key[0], []).append(key)

    def explains_edge(cause: _Node, effect: _Node) -> bool:
        same = cause.delta is None or cause.signal == effect.signal
        return same and _not_after(cause, effect) and cause.share_of(effect) >= explains

    # Explaining edges callee → caller, between the nodes of services the graph links.
    upward: dict[Key, list[Key]] = {key: [] for key in nodes}
    explained: set[Key] = set()
    for caller in sorted(graph):
        for callee in sorted(set(graph[caller])):
            for effect in by_service.get(caller, ()):
                for cause in by_service.get(callee, ()):
                    if caller != callee and explains_edge(nodes[cause], nodes[effect]):
                        upward[cause].append(effect)
                        explained.add(effect)

    reach = {key: _reach(key, nodes, upward) for key in nodes}
    symptom_keys = by_service[symptom]
    symptom_explained = any(key in explained for key in symptom_keys)

    # The symptom with nothing found on it but the alert says least about the cause.
    symptom_seen = any(item.service == symptom for item in evidence)

    def order(key: Key) -> tuple:
        node, (shares, _) = nodes[key], reach[key]
        if key[0] == symptom:
            group = 3 if symptom_explained or not symptom_seen else 1
        elif key not in explained and any(s in shares for s in symptom_keys):
            group = 0
        else:
            group = 2 if key[0] in paths else 4
        accounted = sum(share for k, share in shares.items() if k != key)
        started = node.started_at.timestamp() if node.started_at else math.inf
        return (group, -round(accounted, 9), started, -node.score, key)

    best_of_service: dict[str, Key] = {}
    for key in sorted(nodes, key=order):
        best_of_service.setdefault(key[0], key)

    hypotheses: list[Hypothesis] = []
    for position, key in enumerate(sorted(best_of_service.values(), key=order), start=1):
        node, (shares, parent) = nodes[key], reach[key]
        # The findings behind the service's anomalous signals (not its quiet ones).
        items = sorted((i for i in evidence if i.service == key[0] and (i.service, i.signal) in nodes),
                       key=lambda i: (-_strength(i), i.signal, str(i.finding_id)))
        share = max((shares.get(s, 0.0) for s in symptom_keys), default=0.0)
        confidence = _confidence(node, share, key in explained)
        if hypotheses:  # never more credible than a hypothesis ranked above it
            confidence = min(confidence, hypotheses[-1].confidence)
        hypotheses.append(Hypothesis(
            rank=position, service=key[0], signal=key[1], confidence=confidence,
            path=_path(key, parent, symptom_keys, paths, symptom),
            started_at=node.started_at,
            evidence=[i.finding_id for i in items],
            summary=_summary(node, items),
            sources=sorted({i.source for i in items})))
    return hypotheses


def _reach(start: Key, nodes: dict[Key, _Node],
           upward: dict[Key, list[Key]]) -> tuple[dict[Key, float], dict[Key, Key]]:
    """Every node `start` reaches through explaining edges, with the share of its excess
    that `start` accounts for (the smallest along the best path) and the step back
    along that path."""
    suspect = nodes[start]
    shares, parent = {start: 1.0}, {}
    frontier = deque([start])
    while frontier:
        current = frontier.popleft()
        for up in upward[current]:
            share = min(shares[current], suspect.share_of(nodes[up]))
            if share > shares.get(up, -1.0):
                shares[up], parent[up] = share, current
                frontier.append(up)
    return shares, parent


def _path(key: Key, parent: dict[Key, Key], symptom_keys: list[Key],
          paths: dict[str, list[str]], symptom: str) -> list[str]:
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


def _confidence(node: _Node, share: float, is_explained: bool) -> float:
    """How sure: significance (score / (score + ANOMALOUS), at least ½ for the alerted
    symptom), times ½ + ½ × the share of the symptom's excess accounted for, halved when
    a callee explains the suspect."""
    significance = max(node.score / (node.score + ANOMALOUS), 0.5 if node.alerted else 0.0)
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
