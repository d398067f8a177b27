"""Ranking suspects across the service graph: explanation by magnitude, precedence, reach."""

from __future__ import annotations

import math
import random
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from streams.correlation.anomaly import Observation, assess
from streams.correlation.rootcause import ALERT, Evidence, paths_to, rank_causes

STEP = timedelta(minutes=5)
WINDOW_START = datetime(2024, 5, 1, 10, 0, tzinfo=UTC)
STEPS = 5

# The demo shop: frontend → checkout → payments / inventory, frontend → search.
SHOP = {"frontend": ["checkout", "search"], "checkout": ["payments", "inventory"]}


def finding(service: str, before: float, after: float, *, signal: str = "latency",
            requests: float | None = 100, from_step: int = 2) -> Evidence:
    """A series finding: `before` (± 2 %) over a day of baseline and the first window
    steps, `after` from `from_step` on; `requests` per step (None: not known)."""
    availability = signal == "availability"
    wiggle = 0.02 * (100 - before if availability else before) or 0.0
    baseline = [(WINDOW_START - (i + 1) * STEP, before - wiggle * abs(math.sin(i)) if availability
                 else before + wiggle * math.sin(i)) for i in range(288)]
    window = [(WINDOW_START + i * STEP, before if i < from_step else after) for i in range(STEPS)]
    volume = [] if requests is None else [(t, requests) for t, _ in window]
    obs = Observation(service, signal, "down" if availability else "up", baseline, window,
                      100.0 if availability else 0.0, volume)
    anomaly = assess(obs)
    return Evidence(uuid.uuid5(uuid.NAMESPACE_URL, f"{service}/{signal}"), "prometheus", service,
                    signal, min(1.0, anomaly.score / 10), changed_at=anomaly.started_at, anomaly=anomaly)


def change(service: str, confidence: float, kind: str = "deploy", at_step: int = 1) -> Evidence:
    """A finding without a series (a deploy, a restart, log errors)."""
    return Evidence(uuid.uuid5(uuid.NAMESPACE_URL, f"{service}/{kind}"), "kubernetes", service,
                    kind, confidence, summary=f"{kind} of {service}",
                    changed_at=WINDOW_START + at_step * STEP)


def ranked(evidence, graph=SHOP, symptom="checkout", **kwargs) -> list[str]:
    return [h.service for h in rank_causes(evidence, graph, symptom, 4, **kwargs)]


CASES = {
    "a fault at a leaf ranks first, the caller it explains after it": (
        SHOP, "checkout",
        [finding("checkout", 0.20, 0.70), finding("payments", 0.05, 0.55)],
        ["payments", "checkout"]),
    "the alert on the frontend, the fault two hops down": (
        SHOP, "frontend",
        [finding("frontend", 0.30, 0.80), finding("checkout", 0.20, 0.70),
         finding("payments", 0.05, 0.55)],
        ["payments", "checkout", "frontend"]),
    "a caller slower than its callee can explain is its own cause": (
        SHOP, "checkout",
        [finding("checkout", 0.20, 1.20), finding("payments", 0.05, 0.15)],
        ["checkout", "payments"]),
    "the stronger branch explains the symptom, the weaker does not": (
        SHOP, "checkout",
        [finding("checkout", 0.20, 0.70), finding("payments", 0.05, 0.55),
         finding("inventory", 0.05, 0.10)],
        ["payments", "inventory", "checkout"]),  # the explained symptom after any other suspect
    "of two branches that both explain the symptom, the earlier ranks first": (
        SHOP, "checkout",
        [finding("checkout", 0.20, 0.70, from_step=3), finding("payments", 0.05, 0.60, from_step=3),
         finding("inventory", 0.05, 0.60, from_step=2)],
        ["inventory", "payments", "checkout"]),
    "a quiet callee's large jump accounts for little of a busy caller's trouble": (
        {"site": ["balancer", "search"]}, "site",
        [finding("site", 0.10, 0.20, requests=500), finding("balancer", 0.01, 0.50, requests=20),
         finding("search", 0.01, 0.08, requests=800)],
        ["search", "balancer", "site"]),
    "without request counts the excess is compared in the signal's unit": (
        SHOP, "checkout",
        [finding("checkout", 0.20, 0.70, requests=None), finding("payments", 0.05, 0.55, requests=None)],
        ["payments", "checkout"]),
    "failed requests explain failures in the caller": (
        SHOP, "checkout",
        [finding("checkout", 100.0, 95.0, signal="availability", requests=200),
         finding("payments", 100.0, 90.0, signal="availability", requests=100),
         finding("inventory", 100.0, 97.0, signal="availability", requests=50)],
        ["payments", "inventory", "checkout"]),
    "a slow callee does not explain its caller's errors": (
        SHOP, "checkout",
        [finding("checkout", 100.0, 95.0, signal="availability"), finding("payments", 0.05, 0.55)],
        ["checkout", "payments"]),
    "a level shift ranks below a real fault (it is not anomalous at all)": (
        SHOP, "checkout",
        [finding("checkout", 0.20, 0.70), finding("payments", 0.050, 0.052),
         finding("inventory", 0.05, 0.55)],
        ["inventory", "checkout"]),
    "a deploy on a callee takes part and explains its caller": (
        SHOP, "checkout",
        [finding("checkout", 0.20, 0.70), change("inventory", 0.8)],
        ["inventory", "checkout"]),
    "a weak change finding is no suspect": (
        SHOP, "checkout",
        [finding("checkout", 0.20, 0.70), change("inventory", 0.3)],
        ["checkout"]),
    "the symptom ranks first when nothing below it is anomalous": (
        SHOP, "checkout",
        [finding("checkout", 0.20, 0.70), finding("payments", 0.05, 0.05)],
        ["checkout"]),
}


@pytest.mark.parametrize("name", CASES)
def test_ranking(name: str) -> None:
    graph, symptom, evidence, expected = CASES[name]
    assert ranked(evidence, graph, symptom) == expected


def test_a_fault_whose_effect_precedes_its_callers_ranks_first() -> None:
    chain = {"a": ["b"], "b": ["c"]}
    early = [finding("a", 0.2, 0.8, from_step=3), finding("b", 0.2, 0.8, from_step=2),
             finding("c", 0.2, 0.8, from_step=1)]
    assert ranked(early, chain, "a") == ["c", "b", "a"]
    # c changed only after b's worst moment: however large, it is not what made b slow.
    late = [finding("a", 0.2, 0.8, from_step=2), finding("b", 0.2, 0.8, from_step=2),
            finding("c", 0.2, 1.5, from_step=4)]
    assert late[1].anomaly is not None and late[1].anomaly.peak_at == WINDOW_START + 2 * STEP
    assert ranked(late, chain, "a") == ["b", "c", "a"]


def test_paths_run_from_suspect_to_symptom_along_the_explaining_chain() -> None:
    evidence = [finding("frontend", 0.30, 0.80), finding("checkout", 0.20, 0.70),
                finding("payments", 0.05, 0.55), finding("search", 0.05, 0.06)]
    by_service = {h.service: h for h in rank_causes(evidence, SHOP, "frontend", 4)}
    assert by_service["payments"].path == ["payments", "checkout", "frontend"]
    assert by_service["checkout"].path == ["checkout", "frontend"]
    assert by_service["frontend"].path == ["frontend"]
    assert "search" not in by_service  # not anomalous: no hypothesis


def test_a_suspect_that_explains_nothing_gets_the_graph_path_and_follows() -> None:
    evidence = [finding("frontend", 0.30, 0.80), finding("inventory", 0.05, 0.06, requests=1),
                finding("search", 0.05, 0.50, requests=1)]
    hypotheses = rank_causes(evidence, SHOP, "frontend", 4)
    assert [h.service for h in hypotheses] == ["frontend", "search"]
    assert hypotheses[1].path == ["search", "frontend"]


def test_a_service_outside_the_reach_of_the_symptom_ranks_last() -> None:
    evidence = [finding("checkout", 0.20, 0.70), finding("payments", 0.05, 0.55),
                finding("billing", 0.05, 5.0)]
    hypotheses = rank_causes(evidence, SHOP, "checkout", 4)
    assert [h.service for h in hypotheses] == ["payments", "checkout", "billing"]
    assert hypotheses[-1].path == ["billing", "checkout"]


def test_depth_bounds_what_counts_as_reachable() -> None:
    chain = {"a": ["b"], "b": ["c"]}
    evidence = [finding("a", 0.2, 0.8), finding("b", 0.2, 0.8), finding("c", 0.2, 0.8)]
    assert [h.service for h in rank_causes(evidence, chain, "a", 1)] == ["b", "a", "c"]
    assert paths_to(chain, "a", 1) == {"a": ["a"], "b": ["b", "a"]}


def test_the_alerted_signal_counts_even_when_the_window_shows_little() -> None:
    evidence = [finding("checkout", 0.20, 0.22), finding("payments", 0.05, 0.55)]
    assert ranked(evidence, symptom_signal="latency") == ["payments", "checkout"]
    # Another signal's trouble does not explain the alerted one.
    assert ranked(evidence, symptom_signal="availability") == ["checkout", "payments"]


def test_nothing_found_means_no_hypothesis() -> None:
    assert rank_causes([], SHOP, "checkout", 4) == []
    assert rank_causes([], SHOP, "checkout", 4, symptom_signal="latency") == []


def test_a_symptom_with_nothing_but_the_alert_ranks_after_what_was_found() -> None:
    # inventory is anomalous but does not reach checkout's alert through anything measured.
    first, second = rank_causes([finding("inventory", 0.05, 0.55)], {"checkout": ["payments"], "payments": ["inventory"]},
                                "checkout", 4, symptom_signal="latency")
    assert (first.service, second.service, second.signal) == ("inventory", "checkout", "latency")


def test_the_same_input_in_any_order_gives_the_same_ranking() -> None:
    evidence = [finding("frontend", 0.30, 0.80), finding("checkout", 0.20, 0.70),
                finding("payments", 0.05, 0.55), finding("inventory", 0.05, 0.55),
                finding("search", 0.05, 0.55), change("search", 0.9),
                finding("checkout", 100.0, 92.0, signal="availability")]
    expected = [h.model_dump() for h in rank_causes(evidence, SHOP, "frontend", 4)]
    graph = {caller: list(reversed(callees)) for caller, callees in reversed(list(SHOP.items()))}
    for seed in range(5):
        shuffled = evidence[:]
        random.Random(seed).shuffle(shuffled)
        assert [h.model_dump() for h in rank_causes(shuffled, graph, "frontend", 4)] == expected


def test_hypotheses_carry_rank_confidence_evidence_and_start() -> None:
    evidence = [finding("checkout", 0.20, 0.70), finding("payments", 0.05, 0.55, from_step=1),
                change("payments", 0.7, at_step=0),
                finding("payments", 100.0, 100.0, signal="availability")]
    first, second = rank_causes(evidence, SHOP, "checkout", 4)
    assert (first.rank, second.rank) == (1, 2)
    # The deploy came before the latency rise it explains equally well: it leads.
    assert first.service == "payments" and first.signal == "deploy"
    # The quiet availability series supports nothing.
    assert set(first.evidence) == {evidence[1].finding_id, evidence[2].finding_id}
    assert first.sources == ["kubernetes", "prometheus"]
    assert first.started_at == WINDOW_START
    assert first.summary == "deploy of payments"
    assert 0.5 < first.confidence <= 1
    assert second.confidence < first.confidence  # explained by its callee
    assert "latency" in second.summary


def test_without_the_symptoms_request_count_the_excess_is_compared_in_its_unit() -> None:
    evidence = [finding("checkout", 0.20, 0.70, requests=None), finding("payments", 0.05, 0.55),
                finding("inventory", 0.05, 0.10)]
    assert ranked(evidence) == ["payments", "inventory", "checkout"]


def test_confidence_never_rises_down_the_ranking() -> None:
    evidence = [finding("frontend", 0.30, 0.80), finding("checkout", 0.20, 0.70),
                finding("payments", 0.05, 0.55), finding("search", 0.05, 9.0, requests=1),
                finding("inventory", 0.05, 0.09)]
    confidences = [h.confidence for h in rank_causes(evidence, SHOP, "frontend", 4)]
    assert confidences == sorted(confidences, reverse=True)
    assert all(0 <= c <= 1 for c in confidences)
