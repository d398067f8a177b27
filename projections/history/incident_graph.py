"""The incident's part of the service graph, drawn as SVG (SPEC §14, §16): the symptom
service, the suspects of a run and the services between them, callers above callees,
suspects highlighted in rank order (a rank badge on each, the top one strongest), the
confirmed cause marked.

Pure. Nodes and edges come from the hypotheses' paths (suspect → … → symptom: each step
is a call, read backwards) and from any further edges of the service graph among those
nodes; `graph_of` assembles them, `draw` lays them out in layers and writes the SVG. The
gateway serves it (`GET /v1/incidents/{id}/graph`), `warroom postmortem -o` writes it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from projections.history import svg
from projections.scorecard import field_of

MAX_SUSPECTS = 6
NODE_H, LAYER_GAP, NODE_GAP, MARGIN = 40.0, 46.0, 22.0, 16.0
TOP_SPACE = 26.0  # the caption above the first layer
RANK_FILLS = ("#b42318", "#f97066", "#fecdca", "#fee4e2", "#fef3f2", "#fef3f2")
RANK_INK = ("#ffffff", "#1b1f24", "#1b1f24", "#1b1f24", "#1b1f24", "#1b1f24")
CONFIRMED = "#1a7f37"
EDGE, EDGE_ON_PATH = "#8c959f", "#b42318"


@dataclass(frozen=True)
class Suspect:
    service: str
    rank: int  # the service's place among the distinct services the hypotheses name
    signal: str | None
    confidence: float | None
    path: tuple[str, ...]


@dataclass(frozen=True)
class Graph:
    symptom: str
    suspects: tuple[Suspect, ...]
    nodes: tuple[str, ...]
    edges: tuple[tuple[str, str], ...]  # (caller, callee)
    confirmed: str | None = None
    left_out: int = 0  # suspects beyond MAX_SUSPECTS

    def suspect(self, service: str) -> Suspect | None:
        return next((s for s in self.suspects if s.service == service), None)

    @property
    def top_path(self) -> set[tuple[str, str]]:
        """The calls on the top suspect's path to the symptom."""
        if not self.suspects:
            return set()
        path = self.suspects[0].path
        return {(path[i + 1], path[i]) for i in range(len(path) - 1)}


def suspects_of(hypotheses: Iterable[Any]) -> list[Suspect]:
    """The distinct services typed hypotheses name, best first (by `rank`, else by
    order); hypotheses of older events name none."""
    typed = [h for h in hypotheses if isinstance(field_of(h, "service"), str) and field_of(h, "service")]
    ordered = sorted(enumerate(typed), key=lambda item: (_rank(item[1], item[0]), item[0]))
    found: dict[str, Suspect] = {}
    for _, h in ordered:
        service = field_of(h, "service")
        if service in found:
            continue
        path = field_of(h, "path")
        steps = tuple(str(p) for p in path) if isinstance(path, list) and path else (service,)
        confidence = field_of(h, "confidence")
        found[service] = Suspect(service, len(found) + 1, field_of(h, "signal"),
                                 float(confidence) if isinstance(confidence, (int, float)) else None, steps)
    return list(found.values())


def _rank(hypothesis: Any, position: int) -> int:
    rank = field_of(hypothesis, "rank")
    return rank if isinstance(rank, int) else position + 1


def graph_of(symptom: str, hypotheses: Iterable[Any], edges: Iterable[tuple[str, str]] = (),
             confirmed: str | None = None) -> Graph | None:
    """The graph of the symptom, the suspects of `hypotheses` (None when they name
    none) and the `confirmed` cause, with the calls on the suspects' paths and those of
    `edges` between its nodes."""
    every = suspects_of(hypotheses)
    if not every:
        return None
    suspects = every[:MAX_SUSPECTS]
    # A confirmed cause no run suspected is drawn too, so the picture shows what was missed.
    nodes = list(dict.fromkeys([symptom, *(p for s in suspects for p in reversed(s.path)),
                                *([confirmed] if confirmed else [])]))
    calls = [(s.path[i + 1], s.path[i]) for s in suspects for i in range(len(s.path) - 1)]
    known = set(nodes)
    calls += [(a, b) for a, b in edges if a in known and b in known]
    unique = tuple(dict.fromkeys((a, b) for a, b in calls if a != b))
    return Graph(symptom, tuple(suspects), tuple(nodes), unique, confirmed or None, len(every) - len(suspects))


# --- layout ----------------------------------------------------------------------


@dataclass
class _Placed:
    service: str
    layer: int
    x: float = 0.0
    y: float = 0.0
    width: float = 0.0
    lines: list[str] = field(default_factory=list)


def _layers(graph: Graph) -> dict[str, int]:
    """Each node's layer: one below its lowest caller (longest path from a node nobody
    here calls); a call that would close a cycle is ignored."""
    callers: dict[str, list[str]] = {n: [] for n in graph.nodes}
    for caller, callee in graph.edges:
        callers[callee].append(caller)
    layer: dict[str, int] = {}

    def depth(node: str, visiting: frozenset[str]) -> int:
        if node in layer:
            return layer[node]
        above = [depth(c, visiting | {node}) for c in callers[node] if c not in visiting and c != node]
        layer[node] = max(above, default=-1) + 1
        return layer[node]

    for node in graph.nodes:
        depth(node, frozenset())
    return layer


def _lines(graph: Graph, service: str) -> list[str]:
    suspect = graph.suspect(service)
    detail = []
    if service == graph.symptom:
        detail.append("symptom")
    if suspect is not None:
        if suspect.signal:
            detail.append(suspect.signal)
        if suspect.confidence is not None:
            detail.append(f"{suspect.confidence * 100:.0f}%")
    return [service, " · ".join(detail)] if detail else [service]


def _place(graph: Graph) -> tuple[list[_Placed], float, float]:
    layer = _layers(graph)
    rows: dict[int, list[_Placed]] = {}
    for service in graph.nodes:
        node = _Placed(service, layer[service], lines=_lines(graph, service))
        node.width = max(96.0, svg.text_width(node.lines[0], 12, bold=True) + 30,
                         *(svg.text_width(line, 10) + 24 for line in node.lines[1:]))
        rows.setdefault(node.layer, []).append(node)
    placed: dict[str, _Placed] = {}
    callers: dict[str, list[str]] = {}
    for caller, callee in graph.edges:
        callers.setdefault(callee, []).append(caller)
    for depth in sorted(rows):
        # Under its callers, as far as the row allows: the barycentre of their positions.
        row = rows[depth]
        row.sort(key=lambda n: _barycentre(n.service, callers, placed, graph))
        x = 0.0
        for node in row:
            node.x, node.y = x, TOP_SPACE + MARGIN + depth * (NODE_H + LAYER_GAP)
            x += node.width + NODE_GAP
            placed[node.service] = node
    width = max(sum(n.width for n in row) + NODE_GAP * (len(row) - 1) for row in rows.values())
    width = max(width + 2 * MARGIN, svg.text_width(_caption(graph), 11) + 2 * MARGIN)
    for row in rows.values():
        used = sum(n.width for n in row) + NODE_GAP * (len(row) - 1)
        shift = (width - used) / 2
        for node in row:
            node.x += shift
    height = TOP_SPACE + MARGIN + (max(rows) + 1) * (NODE_H + LAYER_GAP) - LAYER_GAP + MARGIN + 18
    return list(placed.values()), width, height


def _barycentre(service: str, callers: dict[str, list[str]], placed: dict[str, _Placed],
                graph: Graph) -> tuple[float, int, str]:
    above = [placed[c].x + placed[c].width / 2 for c in callers.get(service, []) if c in placed]
    suspect = graph.suspect(service)
    return (sum(above) / len(above) if above else 0.0, suspect.rank if suspect else 0, service)


# --- drawing ---------------------------------------------------------------------


def draw(graph: Graph) -> str:
    """The graph as a standalone SVG document."""
    nodes, width, height = _place(graph)
    at = {n.service: n for n in nodes}
    on_path = graph.top_path
    edges = [_edge(at[a], at[b], (a, b) in on_path) for a, b in graph.edges]
    names = ", ".join(f"{s.rank}. {s.service}" for s in graph.suspects)
    label = f"Service graph of the incident: symptom {graph.symptom}; suspects {names}"
    if graph.confirmed:
        label += f"; confirmed cause {graph.confirmed}"
    return svg.document(
        width, height, label,
        svg.text(MARGIN, 18.0, _caption(graph), font_size=11, fill=svg.MUTED),
        edges, [_node(graph, n) for n in nodes], class_="incident-graph")


def _caption(graph: Graph) -> str:
    caption = "Callers above callees; suspects ranked, 1 the strongest"
    return caption + (f" (+{graph.left_out} more not drawn)" if graph.left_out else "")


def _edge(caller: _Placed, callee: _Placed, strong: bool) -> str:
    x1, y1 = caller.x + caller.width / 2, caller.y + NODE_H
    x2, y2 = callee.x + callee.width / 2, callee.y
    if callee.layer <= caller.layer:  # a call upwards or sideways (a cycle): around the side
        x1, y1, x2, y2 = caller.x + caller.width, caller.y + NODE_H / 2, callee.x + callee.width, callee.y + NODE_H / 2
        bend = max(abs(y2 - y1), NODE_H) / 2 + 20
        d = f"M{svg.number(x1)} {svg.number(y1)}C{svg.number(x1 + bend)} {svg.number(y1)} " \
            f"{svg.number(x2 + bend)} {svg.number(y2)} {svg.number(x2 + 6)} {svg.number(y2)}"
        head = _arrowhead(x2, y2, "left")
    else:
        middle = (y1 + y2) / 2
        d = f"M{svg.number(x1)} {svg.number(y1)}C{svg.number(x1)} {svg.number(middle)} " \
            f"{svg.number(x2)} {svg.number(middle)} {svg.number(x2)} {svg.number(y2 - 6)}"
        head = _arrowhead(x2, y2, "down")
    colour = EDGE_ON_PATH if strong else EDGE
    return svg.el("g", {"class_": "edge on-path" if strong else "edge", "data-caller": caller.service,
                        "data-callee": callee.service},
                  svg.el("path", {"d": d, "fill": "none", "stroke": colour, "stroke-width": 2 if strong else 1.3}),
                  svg.el("path", {"d": head, "fill": colour}),
                  svg.title(f"{caller.service} calls {callee.service}"))


def _arrowhead(x: float, y: float, pointing: str) -> str:
    if pointing == "down":
        return f"M{svg.number(x)} {svg.number(y)}l-4.5-7h9z"
    return f"M{svg.number(x)} {svg.number(y)}l7-4.5v9z"


def _node(graph: Graph, node: _Placed) -> str:
    suspect = graph.suspect(node.service)
    confirmed = graph.confirmed == node.service
    symptom = node.service == graph.symptom
    classes = ["node"]
    if suspect:
        classes += ["suspect", f"rank-{suspect.rank}"]
    if symptom:
        classes.append("symptom")
    if confirmed:
        classes.append("confirmed")
    level = min(suspect.rank, len(RANK_FILLS)) - 1 if suspect else None
    fill = RANK_FILLS[level] if level is not None else "#ffffff"
    ink = RANK_INK[level] if level is not None else svg.INK
    stroke, stroke_width = (CONFIRMED, 3.0) if confirmed else ("#1b1f24", 2.0) if symptom else \
        ("#b42318", 1.2) if suspect else ("#8c959f", 1.2)
    cx = node.x + node.width / 2
    texts = [svg.text(cx, node.y + (16 if len(node.lines) > 1 else 24), node.lines[0], font_size=12,
                      font_weight=600, fill=ink, text_anchor="middle")]
    if len(node.lines) > 1:
        texts.append(svg.text(cx, node.y + 31, node.lines[1], font_size=10, fill=ink, text_anchor="middle"))
    badge = None
    if suspect:
        bx, by = node.x + node.width - 2, node.y + 2
        badge = svg.el("g", {"class_": "rank"},
                       svg.el("circle", {"cx": bx, "cy": by, "r": 9, "fill": "#1b1f24" if suspect.rank > 1 else "#7a271a",
                                         "stroke": "#ffffff", "stroke-width": 1.5}),
                       svg.text(bx, by + 3.8, str(suspect.rank), font_size=11, font_weight=700, fill="#ffffff",
                                text_anchor="middle"))
    cause = svg.text(cx, node.y + NODE_H + 13, "✓ confirmed cause", font_size=10, font_weight=600, fill=CONFIRMED,
                     text_anchor="middle") if confirmed else None
    describe = [node.service]
    if suspect:
        describe.append(f"suspect {suspect.rank}" + (f" ({suspect.signal})" if suspect.signal else ""))
    if symptom:
        describe.append("the symptom service")
    if confirmed:
        describe.append("the confirmed cause")
    data = {"class_": " ".join(classes), "data-service": node.service,
            "data-rank": suspect.rank if suspect else None}
    return svg.el("g", data,
                  svg.el("rect", {"x": node.x, "y": node.y, "width": node.width, "height": NODE_H, "rx": 6,
                                  "fill": fill, "stroke": stroke, "stroke-width": stroke_width}),
                  texts, badge, cause, svg.title(": ".join([describe[0], ", ".join(describe[1:])])
                                              if len(describe) > 1 else describe[0]))


def graph_svg(symptom: str, hypotheses: Sequence[Any], edges: Iterable[tuple[str, str]] = (),
              confirmed: str | None = None) -> str | None:
    """`draw(graph_of(...))`, or None when the hypotheses name no suspect."""
    graph = graph_of(symptom, hypotheses, edges, confirmed)
    return None if graph is None else draw(graph)
