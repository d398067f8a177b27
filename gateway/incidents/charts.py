"""The pictures of an incident's evidence, as SVG drawn from the read models: a
finding's chart, and the incident's part of the service graph with a run's suspects.

The drawing is `projections.history.evidence_chart` and `projections.history.incident_graph`, the same
renderers `warroom postmortem -o` writes files with; the dashboard fetches these with its
token and puts them inline.
"""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Path, Query, Request, Response

from gateway.auth import Viewer
from gateway.deps import PoolDep
from gateway.incidents import queries
from gateway.incidents.routes import BASE, QUERY_ERRORS, KnownIncident
from gateway.problems import Problem
from projections.history.evidence_chart import FindingFacts, chart
from projections.history.incident_graph import graph_svg, suspects_of

router = APIRouter(tags=["incidents"])

SVG = "image/svg+xml"
# An SVG opened on its own is a document: it may run nothing and load nothing.
SVG_HEADERS = {"Content-Security-Policy": "default-src 'none'", "X-Content-Type-Options": "nosniff"}
DRAWN = {**QUERY_ERRORS, 200: {"description": "the picture, as a standalone SVG document",
                               "content": {SVG: {"schema": {"type": "string"}}}}}


def _svg(document: str) -> Response:
    return Response(document, media_type=SVG, headers=SVG_HEADERS)


@router.get(BASE + "/{incident_id}/findings/{finding_id}/chart", response_class=Response, responses=DRAWN,
            summary="A finding's evidence as a chart (SVG)")
async def finding_chart(_: Viewer, incident_id: KnownIncident, pool: PoolDep,
                        finding_id: Annotated[UUID, Path(description="finding id")]) -> Response:
    """The series the finding kept, around its analysis window: the baseline shaded, the
    window, the incident's anchor and the change marked, the typical value as a line,
    and the deploys and restarts its run found for the same service. 404 for a finding
    whose evidence holds no series (`chart` is null on `GET .../findings`)."""
    rows = [FindingFacts.of(dict(row)) for row in await pool.fetch(queries.SELECT_FINDING_AND_RUN, incident_id,
                                                                    finding_id)]
    finding = next((f for f in rows if f.finding_id == str(finding_id)), None)
    if finding is None:
        raise Problem.not_found(f"no finding {finding_id} of incident {incident_id}")
    drawn = chart(finding, rows)
    if drawn is None:
        raise Problem.not_found(f"finding {finding_id} holds no series to chart")
    return _svg(drawn)


RunId = Annotated[UUID | None, Query(description="a run of the incident (default: the latest completed run "
                                                 "whose hypotheses name suspects)")]


@router.get(BASE + "/{incident_id}/graph", response_class=Response, responses=DRAWN,
            summary="The incident's part of the service graph, with a run's suspects (SVG)")
async def suspects_graph(_: Viewer, incident_id: KnownIncident, pool: PoolDep, request: Request,
                         run_id: RunId = None) -> Response:
    """The symptom service, the run's suspects and the services on their paths, callers
    above callees, each suspect with its rank, the confirmed cause marked; the calls
    between them are those of the hypotheses' paths and of the service graph as known at
    the incident's opening (`GET /v1/topology`). 404 when the run (or, by default, every
    completed run) names no suspect."""
    incident = await pool.fetchrow(queries.SELECT_GRAPH_FACTS, incident_id)
    runs = await pool.fetch(queries.SELECT_RUNS, incident_id)  # newest first
    if run_id is not None:
        runs = [run for run in runs if run["run_id"] == run_id]
        if not runs:
            raise Problem.not_found(f"no correlation run {run_id} of incident {incident_id}")
    cause = (incident["root_cause"] or {}).get("service")
    for run in runs:
        if run_id is None and run["state"] != "completed":
            continue
        hypotheses = run["hypotheses"] or []
        if not suspects_of(hypotheses):
            continue
        # A discovery that fails is reported by the view, never raised: the paths still draw.
        view = await request.app.state.topology.view(incident["opened_at"])
        drawn = graph_svg(incident["service"], hypotheses, [(e.caller, e.callee) for e in view.graph.edges], cause)
        assert drawn is not None  # its hypotheses name suspects
        return _svg(drawn)
    if run_id is None:
        raise Problem.not_found(f"no completed correlation run of incident {incident_id} names a suspect")
    raise Problem.not_found(f"run {run_id} of incident {incident_id} names no suspect")
