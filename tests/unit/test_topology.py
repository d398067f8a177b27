"""The service graph: edge strings, edge files, CSV adjacency matrices, discovered label
pairs, the settings that name them (errors name the key), and the candidates a run walks."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from streams.correlation.topology import Topology, configured_edges
from foundation.settings import Settings, SettingsError, load_settings
from foundation.topology import (
    Edge,
    ServiceGraph,
    TopologyError,
    candidates,
    edges_from_labels,
    parse_adjacency,
    parse_edge,
    parse_edges,
    read_file,
)


# --- parsing ---------------------------------------------------------------------------


def test_an_edge_string_keeps_names_with_spaces_and_colons() -> None:
    assert parse_edge("  PetSite -> PGSQL Query_remote ") == Edge("PetSite", "PGSQL Query_remote", "static")
    assert parse_edge("a::Fn->b/prod", "file") == Edge("a::Fn", "b/prod", "file")


@pytest.mark.parametrize(("text", "why"), [
    ("checkout payments", "is not `caller -> callee`"),
    ("a -> b -> c", "is not `caller -> callee`"),
    (" -> b", "a side is empty"),
    ("a ->", "a side is empty"),
    ("a -> a", "cannot call itself"),
])
def test_bad_edge_strings_say_why(text: str, why: str) -> None:
    with pytest.raises(TopologyError, match=why):
        parse_edge(text)


def test_edge_lines_skip_comments_and_name_the_bad_line() -> None:
    assert parse_edges(["# the shop", "", "web -> api  # calls", "api -> db"]) == [
        Edge("web", "api"), Edge("api", "db")]
    with pytest.raises(TopologyError, match="line 2: 'api db'"):
        parse_edges(["web -> api", "api db"])


def test_an_adjacency_matrix_rows_call_columns() -> None:
    text = ",web,api,db\nweb,0,1,0.0\napi,0,0,1.0\ndb,0,0,\n"
    assert parse_adjacency(text) == [Edge("web", "api", "file"), Edge("api", "db", "file")]


@pytest.mark.parametrize(("text", "why"), [
    ("", "empty"),
    (",a,b\na,0\n", "line 2: 1 cells for 2 columns"),
    (",a,b\na,0,x\n", "line 2, column 'b': 'x' is not a number"),
    (",a,b\na,1,0\n", "line 2: 'a' cannot call itself"),
    (",a,\na,0,1\n", "line 1: the header must name every column"),
    (",a\n,1\n", "line 2: the first cell must name the calling service"),
])
def test_bad_adjacency_matrices_say_where(text: str, why: str) -> None:
    with pytest.raises(TopologyError, match=why):
        parse_adjacency(text)


def test_a_file_is_edge_lines_or_a_matrix(tmp_path: Path) -> None:
    lines = tmp_path / "graph.txt"
    lines.write_text("# comment\nweb -> api\n")
    matrix = tmp_path / "graph.csv"
    matrix.write_text(",web,api\nweb,0,1\napi,0,0\n")
    assert read_file(lines) == [Edge("web", "api", "file")]
    assert read_file(matrix) == [Edge("web", "api", "file")]
    with pytest.raises(TopologyError, match="cannot read"):
        read_file(tmp_path / "missing.csv")


def test_a_petshop_style_matrix_with_long_names_reads() -> None:
    names = ["PetSite", "payforadoption_AWS::ECS::Container", "PGSQL Query_remote"]
    text = "," + ",".join(names) + "\n" + "\n".join(
        f"{name}," + ",".join("1.0" if (i, j) in {(0, 1), (1, 2)} else "0.0" for j in range(3))
        for i, name in enumerate(names)) + "\n"
    assert ServiceGraph.of(parse_adjacency(text)).callees() == {
        "PetSite": ["payforadoption_AWS::ECS::Container"],
        "payforadoption_AWS::ECS::Container": ["PGSQL Query_remote"]}


def test_discovered_label_pairs_become_edges_once() -> None:
    series = [{"client": "web", "server": "api"}, {"client": "web", "server": "api", "le": "0.1"},
              {"client": "api", "server": "api"}, {"client": "api"}, {"client": " ", "server": "db"}]
    assert edges_from_labels(series, "client", "server", "discovery:tempo") == [
        Edge("web", "api", "discovery:tempo")]


def test_a_graph_keeps_each_origin_of_an_edge_and_calls_once() -> None:
    graph = ServiceGraph.of([Edge("web", "api", "static")], [Edge("web", "api", "discovery:istio"),
                                                              Edge("api", "db", "discovery:istio")])
    assert len(graph.edges) == 3 and graph.nodes == ["api", "db", "web"]
    assert graph.callees() == {"api": ["db"], "web": ["api"]}


# --- candidates ------------------------------------------------------------------------

CALLS = {"web": ["search", "api"], "api": ["db", "cache"], "db": ["disk"], "cache": ["api"], "search": []}


def test_candidates_walk_callees_breadth_first_within_the_depth() -> None:
    assert candidates(CALLS, "web", max_depth=2, max_candidates=20) == [
        ("web", 0), ("api", 1), ("search", 1), ("cache", 2), ("db", 2)]
    assert candidates(CALLS, "web", max_depth=0, max_candidates=20) == [("web", 0)]


def test_candidates_stop_at_the_count_nearest_first() -> None:
    assert candidates(CALLS, "web", max_depth=5, max_candidates=3) == [("web", 0), ("api", 1), ("search", 1)]


def test_a_cycle_is_walked_once_and_callers_are_never_candidates() -> None:
    assert candidates(CALLS, "api", max_depth=10, max_candidates=20) == [
        ("api", 0), ("cache", 1), ("db", 1), ("disk", 2)]
    assert candidates(CALLS, "unknown", max_depth=3, max_candidates=20) == [("unknown", 0)]


# --- settings --------------------------------------------------------------------------


@pytest.mark.parametrize(("toml", "key", "why"), [
    ('[topology]\nedges = ["web -> api", "api db"]\n', "topology.edges.1", "is not `caller -> callee`"),
    ('[topology]\nedges = ["db -> db"]\n', "topology.edges.0", "cannot call itself"),
    ('[topology]\nfile = "/nonexistent/graph.csv"\n', "topology.file", "cannot read"),
    ('[[topology.discovery]]\nname = "x"\nquery = "rate(x{a=\\"b\\"}[{window}])"\n'
     'caller_label = "a"\ncallee_label = "b"\n', "topology.discovery.0.query", "write literal braces doubled"),
    ('[[topology.discovery]]\nname = "x"\nquery = "up"\ncaller_label = "a"\ncallee_label = "b"\n'
     '[[topology.discovery]]\nname = "x"\nquery = "up"\ncaller_label = "a"\ncallee_label = "b"\n',
     "topology.discovery", "repeated: x"),
    ("[topology]\nmax_depth = -1\n", "topology.max_depth", "greater than or equal to 0"),
    ('[topology]\ndiscovery_window = "an hour"\n', "topology.discovery_window", "not a duration"),
])
def test_bad_topology_settings_fail_naming_the_key(tmp_path: Path, toml: str, key: str, why: str) -> None:
    config = tmp_path / "warroom.toml"
    config.write_text(toml)
    with pytest.raises(SettingsError, match=f"'{key}'") as err:
        load_settings(config)
    assert why in str(err.value)


def test_a_bad_file_names_its_line(tmp_path: Path) -> None:
    graph = tmp_path / "graph.txt"
    graph.write_text("web -> api\nweb api\n")
    config = tmp_path / "warroom.toml"
    config.write_text(f'[topology]\nfile = "{graph}"\n')
    with pytest.raises(SettingsError, match="'topology.file'.*line 2: 'web api'"):
        load_settings(config)


# --- the graph a run walks -----------------------------------------------------------------


async def test_without_prometheus_discovery_is_reported_not_run(tmp_path: Path) -> None:
    graph = tmp_path / "graph.txt"
    graph.write_text("api -> db\n")
    settings = Settings(topology={"edges": ["web -> api"], "file": str(graph)})
    topology = Topology(settings)
    view = await topology.view(datetime(2024, 5, 1, tzinfo=UTC))
    await topology.aclose()
    assert view.graph.edges == (Edge("api", "db", "file"), Edge("web", "api", "static"))
    assert [(r.name, r.error) for r in view.discovery] == [
        ("tempo", "not run: correlation.prometheus.url is not set"),
        ("istio", "not run: correlation.prometheus.url is not set")]


async def test_a_file_unreadable_after_start_leaves_the_inline_edges(tmp_path: Path) -> None:
    graph = tmp_path / "graph.txt"
    graph.write_text("api -> db\n")
    settings = Settings(topology={"edges": ["web -> api"], "file": str(graph), "discovery": []})
    graph.unlink()
    assert configured_edges(settings) == [Edge("web", "api", "static")]
