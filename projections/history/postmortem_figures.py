"""The pictures of a postmortem: each finding's chart and the service graph of the
hypotheses, drawn by the dashboard's own renderers from what the log kept.

`figures` draws them and names their files (`NAME-1.svg`, … and `NAME-graph.svg` beside
`NAME.md`); `write` puts the Markdown and its SVG files in place. Without files (the
`GET …/postmortem` answer), the document names the gateway paths that draw them instead.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from projections.history.evidence_chart import FindingFacts, chart
from projections.history.incident_graph import graph_svg
from projections.history.postmortem import Postmortem
from projections.history.postmortem_markdown import render


@dataclass(frozen=True)
class Figure:
    name: str  # the file name, beside the document
    alt: str
    svg: str


@dataclass(frozen=True)
class Figures:
    charts: dict[str, Figure] = field(default_factory=dict)  # by finding id
    graph: Figure | None = None

    def all(self) -> list[Figure]:
        return [*self.charts.values(), *([self.graph] if self.graph else [])]


def figures(pm: Postmortem, stem: str) -> Figures:
    """Every picture of `pm`, its files named after `stem` (the document's name without `.md`)."""
    charts: dict[str, Figure] = {}
    for run in pm.runs:
        facts = [FindingFacts.of(f) for f in run.findings]
        for fact in facts:
            drawn = chart(fact, facts)
            if drawn is not None:
                what = " ".join(p for p in (fact.service, fact.signal or fact.kind) if p)
                charts[fact.finding_id] = Figure(f"{stem}-{len(charts) + 1}.svg", f"Chart: {what}", drawn)
    cause = pm.root_cause["service"] if pm.root_cause else None
    drawn_graph = graph_svg(pm.incident["service"], pm.hypotheses, confirmed=cause)
    graph = Figure(f"{stem}-graph.svg", "Service graph: the symptom and the suspects", drawn_graph) \
        if drawn_graph else None
    return Figures(charts, graph)


def write(pm: Postmortem, path: Path) -> list[Path]:
    """Write the Markdown of `pm` to `path` and its pictures beside it; every file written."""
    drawn = figures(pm, path.stem)
    written = []
    for figure in drawn.all():
        target = path.with_name(figure.name)
        target.write_text(figure.svg, encoding="utf-8")
        written.append(target)
    path.write_text(render(pm, drawn), encoding="utf-8")
    return [path, *written]
