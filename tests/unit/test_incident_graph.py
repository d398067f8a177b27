"""The incident's part of the service graph: the symptom, the suspects and the calls
between them, callers above callees, suspects ranked, the confirmed cause marked."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from contracts.hypotheses import Hypothesis
from projections.history.incident_graph import MAX_SUSPECTS, RANK_FILLS, graph_of, graph_svg, suspects_of

NS = {"svg": "http://www.w3.org/2000/svg"}


def hypothesis(rank: int, service: str, path: list[str], signal: str = "latency", confidence: float = 0.5) -> dict:
    return Hypothesis(rank=rank, service=service, signal=signal, confidence=confidence,
                      path=path).model_dump(mode="json")


RANKED = [
    hypothesis(1, "payments", ["payments", "checkout", "frontend"], "errors", 0.87),
    hypothesis(2, "inventory", ["inventory", "search", "frontend"], "latency", 0.55),
    hypothesis(3, "frontend", ["frontend"], "errors", 0.3),
    hypothesis(4, "payments", ["payments", "checkout", "frontend"], "latency", 0.2),  # the same suspect again
]


def drawn(*args, **kwargs) -> ET.Element:
    svg = graph_svg(*args, **kwargs)
    assert svg is not None
    return ET.fromstring(svg)


def nodes(root: ET.Element) -> dict[str, ET.Element]:
    return {g.get("data-service"): g for g in root.findall(".//svg:g", NS) if "node" in g.get("class", "").split()}


def edges(root: ET.Element) -> set[tuple[str, str]]:
    return {(g.get("data-caller"), g.get("data-callee")) for g in root.findall(".//svg:g", NS)
            if "edge" in g.get("class", "").split()}


def top(node: ET.Element) -> float:
    return float(node.find("svg:rect", NS).get("y"))


def test_the_symptom_the_suspects_and_the_calls_on_their_paths() -> None:
    root = drawn("frontend", RANKED)
    assert set(nodes(root)) == {"frontend", "checkout", "payments", "search", "inventory"}
    assert edges(root) == {("frontend", "checkout"), ("checkout", "payments"), ("frontend", "search"),
                           ("search", "inventory")}


def test_callers_are_drawn_above_their_callees() -> None:
    shown = nodes(drawn("frontend", RANKED))
    for caller, callee in [("frontend", "checkout"), ("checkout", "payments"), ("frontend", "search"),
                           ("search", "inventory")]:
        assert top(shown[caller]) < top(shown[callee]), (caller, callee)
    assert top(shown["checkout"]) == top(shown["search"])  # one layer


def test_suspects_carry_their_rank_in_order_and_the_top_one_is_strongest() -> None:
    shown = nodes(drawn("frontend", RANKED))
    ranks = {name: node.get("data-rank") for name, node in shown.items()}
    assert ranks == {"payments": "1", "inventory": "2", "frontend": "3", "checkout": None, "search": None}
    for name, rank in (("payments", 1), ("inventory", 2), ("frontend", 3)):
        node = shown[name]
        assert f"rank-{rank}" in node.get("class").split()
        assert node.find("svg:rect", NS).get("fill") == RANK_FILLS[rank - 1]
        assert node.find("svg:g[@class='rank']/svg:text", NS).text == str(rank)
    assert shown["checkout"].find("svg:rect", NS).get("fill") == "#ffffff"
    assert "symptom" in shown["frontend"].get("class").split()


def test_the_top_suspects_path_is_drawn_strongest() -> None:
    root = drawn("frontend", RANKED)
    strong = {(g.get("data-caller"), g.get("data-callee")) for g in root.findall(".//svg:g", NS)
              if g.get("class") == "edge on-path"}
    assert strong == {("frontend", "checkout"), ("checkout", "payments")}


def test_the_confirmed_cause_is_marked_even_when_no_run_suspected_it() -> None:
    shown = nodes(drawn("frontend", RANKED, confirmed="payments"))
    assert "confirmed" in shown["payments"].get("class").split()
    assert [n for n, node in shown.items() if "confirmed" in node.get("class").split()] == ["payments"]
    missed = nodes(drawn("frontend", RANKED, confirmed="dns"))
    assert "confirmed" in missed["dns"].get("class").split() and missed["dns"].get("data-rank") is None


def test_edges_of_the_service_graph_join_the_drawn_nodes_only() -> None:
    root = drawn("frontend", RANKED, [("checkout", "inventory"), ("checkout", "cart"), ("frontend", "frontend")])
    assert ("checkout", "inventory") in edges(root)
    assert "cart" not in nodes(root) and ("frontend", "frontend") not in edges(root)


def test_a_cycle_still_lays_out() -> None:
    graph = graph_of("a", [hypothesis(1, "b", ["b", "a"])], [("b", "a")])
    assert graph is not None and set(graph.edges) == {("a", "b"), ("b", "a")}
    assert set(nodes(drawn("a", [hypothesis(1, "b", ["b", "a"])], [("b", "a")]))) == {"a", "b"}


def test_only_so_many_suspects_are_drawn_and_the_rest_are_counted() -> None:
    many = [hypothesis(i + 1, f"svc-{i}", [f"svc-{i}", "frontend"]) for i in range(MAX_SUSPECTS + 2)]
    root = drawn("frontend", many)
    assert len([n for n in nodes(root).values() if n.get("data-rank")]) == MAX_SUSPECTS
    assert any("(+2 more not drawn)" in (t.text or "") for t in root.iter("{http://www.w3.org/2000/svg}text"))


@pytest.mark.parametrize("hypotheses", [
    [],
    [{"rank": 1, "summary": "An error spike", "confidence": 0.9}],  # hypotheses of older events
    [{"service": "", "confidence": 0.4}],
])
def test_no_suspect_no_graph(hypotheses) -> None:
    assert suspects_of(hypotheses) == []
    assert graph_svg("frontend", hypotheses) is None


def test_names_are_escaped() -> None:
    svg = graph_svg("front<end>", [hypothesis(1, 'a&"b"', ['a&"b"', "front<end>"])])
    assert set(nodes(ET.fromstring(svg))) == {"front<end>", 'a&"b"'}
