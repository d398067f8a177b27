"""GET /v1/topology on a running gateway: configured edges (inline and from a file) and
edges discovered from the suite's Prometheus, each with its origin; a discovery that
fails is reported in the answer, never as a server error."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest

from harness.waiting import wait_for_async
from stack import Stack, start_stack

GRAPH_METRIC = "warroom_topology_calls_total"


@pytest.fixture(scope="module")
def mapped(kafka, postgres, prometheus, tmp_path_factory) -> Iterator[Stack]:
    work = tmp_path_factory.mktemp("topology")
    graph = work / "graph.txt"
    graph.write_text("# from the architecture diagram\napi -> db\n")
    discovery = [
        {"name": "traces", "query": f"sum by (client, server) (rate({GRAPH_METRIC}[{{window}}]))",
         "caller_label": "client", "callee_label": "server"},
        {"name": "broken", "query": "sum(rate(nothing[{window}])", "caller_label": "a", "callee_label": "b"},
    ]
    running = start_stack(kafka.bootstrap, postgres.dsn, work, **{
        "WARROOM_TOPOLOGY__EDGES": json.dumps(["web -> api"]),
        "WARROOM_TOPOLOGY__FILE": str(graph),
        "WARROOM_TOPOLOGY__DISCOVERY": json.dumps(discovery),
        "WARROOM_TOPOLOGY__DISCOVERY_WINDOW": "1m",
        "WARROOM_CORRELATION__PROMETHEUS__URL": prometheus.url,
    })
    yield running
    running.stop()


async def test_the_graph_names_where_each_edge_came_from(mapped: Stack, prometheus, exporter) -> None:
    calls = exporter.counter(GRAPH_METRIC, "requests between services", ("client", "server"))
    calls.labels(client="api", server="cache").inc()

    async def discovered() -> bool:
        calls.labels(client="api", server="cache").inc()
        async with httpx.AsyncClient() as http:
            body = (await http.get(f"{prometheus.url}/api/v1/query",
                                   params={"query": f"rate({GRAPH_METRIC}[1m]) > 0"})).json()
        return bool(body["data"]["result"])
    await wait_for_async(discovered, timeout=60, interval=0.5, message="Prometheus rates the calls")

    async with mapped.client("viewer") as viewer:
        response = await viewer.get("/v1/topology")
        assert response.status_code == 200, response.text
        graph = response.json()
        assert graph["nodes"] == ["api", "cache", "db", "web"]
        assert graph["edges"] == [
            {"caller": "api", "callee": "cache", "origins": ["discovery:traces"]},
            {"caller": "api", "callee": "db", "origins": ["file"]},
            {"caller": "web", "callee": "api", "origins": ["static"]},
        ]
        reports = {d["name"]: d for d in graph["discovery"]}
        assert reports["traces"]["edges"] == 1 and reports["traces"]["error"] is None
        assert reports["traces"]["query"] == f"sum by (client, server) (rate({GRAPH_METRIC}[1m]))"
        assert reports["broken"]["edges"] == 0 and "bad_data" in reports["broken"]["error"]

        naive = await viewer.get("/v1/topology", params={"at": "2024-05-01T12:00:00"})
        assert naive.status_code == 422 and "at" in json.dumps(naive.json())
        past = await viewer.get("/v1/topology", params={"at": "2024-05-01T12:00:00Z"})
        assert past.status_code == 200 and past.json()["at"].startswith("2024-05-01T12:00:00")
        assert {e["caller"] + "->" + e["callee"] for e in past.json()["edges"]} == {"api->db", "web->api"}

    async with httpx.AsyncClient(base_url=mapped.base_url) as anonymous:
        assert (await anonymous.get("/v1/topology")).status_code == 401
