"""The service graph a run walks: edges from settings and a file, plus those discovered
from Prometheus service-graph metrics at the incident's time (SPEC §14).

Discovery is one instant query per `topology.discovery` entry, evaluated at the moment
asked for, each bounded by `topology.discovery_timeout_s`. A discovery that fails or
finds nothing is reported, never raised: a run still walks what is known. Answers are
reused for `topology.refresh_s` (per moment rounded down to that period, so runs of one
live incident share them while a historical incident gets the graph of its own time).
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime

import httpx

from streams.correlation.prometheus import PrometheusClient
from streams.correlation.resilience import SourceError
from streams.correlation.templates import render
from foundation.settings import Discovery, Settings
from foundation.topology import Edge, ServiceGraph, TopologyError, edges_from_labels, parse_edge, read_file

CACHED_MOMENTS = 32

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DiscoveryReport:
    """What one discovery query gave: how many edges, or why none."""

    name: str
    query: str
    edges: int = 0
    error: str | None = None


@dataclass(frozen=True)
class TopologyView:
    graph: ServiceGraph
    discovery: tuple[DiscoveryReport, ...] = ()


def configured_edges(settings: Settings) -> list[Edge]:
    """The edges settings name: `topology.edges` (static) and `topology.file` (file).

    Both were checked when the settings loaded; a file that became unreadable since is
    logged and left out, so runs still walk the inline edges rather than stop."""
    topology = settings.topology
    edges = [parse_edge(text, "static") for text in topology.edges]
    if topology.file is not None:
        try:
            edges += read_file(topology.file)
        except TopologyError as err:
            log.error("setting 'topology.file': %s; walking the other edges only", err)
    return edges


class Topology:
    """The graph of one process: the configured edges read once, discovery asked per
    moment. Build once per process and reuse across runs; `aclose` at the end."""

    def __init__(self, settings: Settings, http: httpx.AsyncClient | None = None) -> None:
        self.settings = settings
        self.static = configured_edges(settings)
        url = settings.correlation.prometheus.url
        self._own_http = http is None and bool(url and settings.topology.discovery)
        self._http = httpx.AsyncClient(timeout=settings.topology.discovery_timeout_s) if self._own_http else http
        self.client = PrometheusClient(url, self._http) if url and self._http is not None else None
        self._cache: OrderedDict[int, TopologyView] = OrderedDict()

    async def view(self, at: datetime) -> TopologyView:
        """The graph as known at `at`: configured edges and what discovery finds then."""
        discoveries = self.settings.topology.discovery
        if not discoveries:
            return TopologyView(ServiceGraph.of(self.static))
        if self.client is None:
            reason = "not run: correlation.prometheus.url is not set"
            return TopologyView(ServiceGraph.of(self.static),
                                tuple(DiscoveryReport(d.name, d.query, error=reason) for d in discoveries))
        refresh = self.settings.topology.refresh_s
        key = math.floor(at.timestamp() / refresh) if refresh > 0 else None
        if key is not None and key in self._cache:
            self._cache.move_to_end(key)
            return self._cache[key]
        answers = await asyncio.gather(*(self._discover(d, at) for d in discoveries))
        view = TopologyView(ServiceGraph.of(self.static, *(edges for edges, _ in answers)),
                            tuple(report for _, report in answers))
        if key is not None and all(report.error is None for report in view.discovery):
            self._cache[key] = view
            while len(self._cache) > CACHED_MOMENTS:
                self._cache.popitem(last=False)
        return view

    async def _discover(self, discovery: Discovery, at: datetime) -> tuple[list[Edge], DiscoveryReport]:
        assert self.client is not None
        query = render(discovery.query, window=self.settings.topology.discovery_window)
        try:
            async with asyncio.timeout(self.settings.topology.discovery_timeout_s):
                series = await self.client.query(query, at)
        except (SourceError, TimeoutError) as exc:
            error = str(exc) or f"no answer within {self.settings.topology.discovery_timeout_s:g} s"
            return [], DiscoveryReport(discovery.name, query, error=error)
        edges = edges_from_labels((s.labels for s in series), discovery.caller_label, discovery.callee_label,
                                  f"discovery:{discovery.name}")
        return edges, DiscoveryReport(discovery.name, query, edges=len(edges))

    async def aclose(self) -> None:
        if self._own_http and self._http is not None:
            await self._http.aclose()
