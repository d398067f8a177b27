"""GET /v1/topology: the service graph as correlation walks it, each edge with its origins."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Query, Request

from gateway.auth import Viewer
from gateway.fields import Instant
from gateway.problems import documented
from gateway.topology.schemas import DiscoveryOutcome, Topology, TopologyEdge
from streams.correlation.topology import Topology as ServiceTopology

router = APIRouter(tags=["topology"])

At = Annotated[Instant | None, Query(
    description="an RFC 3339 instant with an offset at which discovery queries are evaluated (default: now)")]


@router.get("/v1/topology", response_model=Topology, responses=documented(401, 403, 422),
            summary="The service graph: configured and discovered edges")
async def topology(_: Viewer, request: Request, at: At = None) -> Topology:
    """Discovery runs against Prometheus with a bounded timeout; a discovery that fails is
    reported in `discovery[].error`, never as an error of this endpoint."""
    graph: ServiceTopology = request.app.state.topology
    moment = at or datetime.now(UTC)
    view = await graph.view(moment)
    origins: dict[tuple[str, str], list[str]] = {}
    for edge in view.graph.edges:
        origins.setdefault((edge.caller, edge.callee), []).append(edge.origin)
    return Topology(
        at=moment, nodes=view.graph.nodes,
        edges=[TopologyEdge(caller=caller, callee=callee, origins=sorted(found))
               for (caller, callee), found in sorted(origins.items())],
        discovery=[DiscoveryOutcome(name=r.name, query=r.query, edges=r.edges, error=r.error)
                   for r in view.discovery])
