"""Postmortems include the charts and the service graph: as SVG files beside the
Markdown (`warroom postmortem -o`), or, in the self-contained document, as the gateway
paths that draw them."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import timedelta
from pathlib import Path
from uuid import UUID

from contracts.events import FindingRecorded, RootCauseConfirmed
from harness.evidence import series_evidence
from projections.history.postmortem import build
from projections.history.postmortem_figures import figures, write
from projections.history.postmortem_markdown import render
from tests.unit.test_postmortem import ALICE, INCIDENT, RUN, SYSTEM, T0, TYPED, script

SERIES = FindingRecorded(run_id=RUN, finding_id=UUID(int=21), source="prometheus", kind="latency",
                         summary="payments-db: latency up to 0.9", confidence=0.95,
                         changed_at=T0 - timedelta(minutes=3), service="payments-db", signal="latency",
                         evidence=series_evidence("payments-db", "latency", anchor=T0, typical=0.04, bad=0.9))
RESTART = FindingRecorded(run_id=RUN, finding_id=UUID(int=22), source="kubernetes", kind="container_restarts",
                          summary="payments-db restarted", confidence=0.6, changed_at=T0 - timedelta(minutes=4),
                          service="payments-db", signal="restarts", evidence={"containers": [{"restarts": 1}]})


def charted() -> list:
    """The scripted incident with typed hypotheses, a finding that kept its series, a
    restart of the same service, and a confirmed cause."""
    return script((timedelta(hours=1), SYSTEM, SERIES), (timedelta(hours=1), SYSTEM, RESTART),
                  (timedelta(hours=2), ALICE, RootCauseConfirmed(service="payments-db", signal="latency", by="alice")),
                  hypotheses=TYPED)


def test_files_beside_the_markdown_and_linked_from_it(tmp_path: Path) -> None:
    target = tmp_path / "checkout-5xx.md"
    written = write(build(charted()), target)
    assert [p.name for p in written] == ["checkout-5xx.md", "checkout-5xx-1.svg", "checkout-5xx-graph.svg"]
    text = target.read_text()
    assert "![Chart: payments-db latency](checkout-5xx-1.svg)" in text
    assert "![Service graph: the symptom and the suspects](checkout-5xx-graph.svg)" in text.split("## Hypotheses")[1]
    chart = ET.parse(tmp_path / "checkout-5xx-1.svg").getroot()
    classes = {el.get("class") for el in chart.iter()}
    assert {"series", "baseline", "window", "change", "mark restart"} <= classes
    graph = ET.parse(tmp_path / "checkout-5xx-graph.svg").getroot()
    confirmed = [el.get("data-service") for el in graph.iter() if "confirmed" in (el.get("class") or "").split()]
    assert confirmed == ["payments-db"]
    assert "/chart`" not in text  # the files are the charts


def test_the_self_contained_document_names_where_the_charts_are_drawn() -> None:
    text = render(build(charted()))
    base = f"/v1/incidents/{INCIDENT}"
    assert f"  - Chart: `GET {base}/findings/{UUID(int=21)}/chart`" in text
    assert f"`GET {base}/findings/{UUID(int=7)}/chart`" not in text  # evidence without a series
    assert f"warroom postmortem {INCIDENT} -o DIR/NAME.md` writes them beside the document" in text
    assert f"`GET {base}/graph?run_id={RUN}` (SVG)" in text.split("## Hypotheses")[1]
    assert ".svg)" not in text


def test_findings_without_a_series_and_hypotheses_without_suspects_draw_nothing(tmp_path: Path) -> None:
    pm = build(script())
    drawn = figures(pm, "pm")
    assert drawn.charts == {} and drawn.graph is None
    assert write(pm, tmp_path / "pm.md") == [tmp_path / "pm.md"]
    text = render(pm)
    assert "/chart`" not in text and "/graph?run_id" not in text and "writes them beside" not in text
