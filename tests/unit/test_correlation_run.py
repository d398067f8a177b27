"""A run over fake sources: the commands it yields, their order, the deadline, the outcome."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from datetime import timedelta

import pytest

from contracts.commands import (
    COMMAND_ADAPTER,
    CompleteCorrelation,
    CompleteCorrelationSource,
    RecordFinding,
    StartCorrelation,
    StartCorrelationSource,
)
from harness.clocks import FakeClock
from streams.correlation import IncidentFacts, correlate, run_outcome, start_command
from streams.correlation.model import Finding, Scope, SourceReport
from streams.correlation.resilience import Calls, CircuitBreaker, SourceUnreachable
from streams.correlation.run import build_sources, finding_id
from foundation.settings import Settings

RUN = uuid.UUID("00000000-0000-4000-8000-0000000000aa")


class FakeSource:
    def __init__(self, name: str, work: Callable[[Calls], Awaitable[SourceReport]], reason: str | None = None,
                 clock: FakeClock | None = None) -> None:
        self.name = name
        self.work = work
        self.reason = reason
        self.breaker = CircuitBreaker(name, 5, 30, clock or FakeClock())
        self.investigated = 0
        self.scopes: list[Scope] = []

    def unavailable_reason(self) -> str | None:
        return self.reason

    async def investigate(self, incident: IncidentFacts, scope: Scope, calls: Calls) -> SourceReport:
        self.investigated += 1
        self.scopes.append(scope)
        return await self.work(calls)

    async def aclose(self) -> None:
        pass


def _settings(deadline_s: float = 30, sources: tuple[str, ...] = ("prometheus", "loki", "kubernetes")) -> Settings:
    return Settings(correlation={"run_deadline_s": deadline_s, "sources": list(sources),
                                 "backoff_base_s": 0.0})


def _incident(clock: FakeClock) -> IncidentFacts:
    return IncidentFacts(uuid.UUID("00000000-0000-4000-8000-000000000001"), "checkout",
                         clock.now() - timedelta(minutes=1))


async def _collect(settings: Settings, sources: dict, clock: FakeClock) -> list:
    return [c async for c in correlate(settings, _incident(clock), RUN, sources, clock)]


def _answers(*findings: Finding, outcome: str = "succeeded", problems: tuple[str, ...] = (),
             query: str = "up", advance_s: float = 0.0, clock: FakeClock | None = None):
    async def work(calls: Calls) -> SourceReport:
        calls.note(query)
        await calls.call("q", _ok)
        if clock and advance_s:
            clock.advance(advance_s)
        return SourceReport(outcome, list(findings), list(problems))  # type: ignore[arg-type]
    return work


async def _ok() -> str:
    return "ok"


def _completions(commands: list) -> dict[str, CompleteCorrelationSource]:
    done = [c for c in commands if isinstance(c, CompleteCorrelationSource)]
    assert len(done) == len({c.source for c in done}), "exactly one completion per source"
    return {c.source: c for c in done}


async def test_a_full_run_yields_each_step_in_order() -> None:
    clock = FakeClock()
    began = clock.now()
    spike = Finding("error_rate", "error rate 12%", 0.9, {"query": "q", "value": 0.12},
                    changed_at=clock.now() - timedelta(seconds=50))
    rollout = Finding("rollout", "deployment checkout rolled out revision 4", 0.7, {},
                      changed_at=clock.now() - timedelta(seconds=90), key="checkout")
    sources = {
        "prometheus": FakeSource("prometheus", _answers(spike, query="sum(rate(x[5m]))", advance_s=0.25, clock=clock)),
        "loki": FakeSource("loki", _answers(), reason="not configured: correlation.loki.url is not set"),
        "kubernetes": FakeSource("kubernetes", _answers(rollout)),
    }
    commands = await _collect(_settings(), sources, clock)

    types = [type(c).__name__ for c in commands]
    assert types[:3] == ["StartCorrelationSource"] * 3
    assert types[-1] == "CompleteCorrelation"
    done = _completions(commands)
    assert done["loki"].outcome == "unavailable" and done["loki"].attempts == 0
    assert done["loki"].error == "not configured: correlation.loki.url is not set"
    assert sources["loki"].investigated == 0
    prom = done["prometheus"]
    assert (prom.outcome, prom.attempts, prom.queries, prom.error) == ("succeeded", 1, ["sum(rate(x[5m]))"], None)
    assert prom.duration_ms == 250

    findings = [c for c in commands if isinstance(c, RecordFinding)]
    for finding in findings:  # a source's findings follow its completion
        assert commands.index(finding) > commands.index(done[finding.source])
    by_kind = {f.kind: f for f in findings}
    assert by_kind["rollout"].finding_id == finding_id(RUN, "kubernetes", "rollout", "checkout")
    assert by_kind["error_rate"].finding_id == uuid.uuid5(RUN, "prometheus:error_rate")
    assert by_kind["error_rate"].evidence == {"query": "q", "value": 0.12}

    assert {(f.service, f.signal) for f in findings} == {("checkout", "error_rate"), ("checkout", "rollout")}

    final = commands[-1]
    assert isinstance(final, CompleteCorrelation) and final.outcome == "succeeded"
    [hypothesis] = final.hypotheses  # both findings are about the incident's own service
    assert (hypothesis.rank, hypothesis.service, hypothesis.path) == (1, "checkout", ["checkout"])
    assert set(hypothesis.evidence) == {by_kind["rollout"].finding_id, by_kind["error_rate"].finding_id}
    for command in commands:  # everything is a valid wire command of this run and incident
        assert COMMAND_ADAPTER.validate_json(command.model_dump_json(by_alias=True)) == command
        assert command.run_id == RUN and command.incident_id == _incident(clock).id
        assert command.issued_at in (began, began + timedelta(seconds=0.25))  # from the injected clock


async def test_every_source_examines_the_services_below_the_symptom_in_the_incident_window() -> None:
    clock = FakeClock()
    settings = Settings(correlation={"sources": ["prometheus"], "window": "10m", "settle": "5m", "baseline": "1h"},
                        topology={"edges": ["checkout -> payments", "payments -> db", "db -> disk",
                                            "search -> index", "payments -> checkout"],
                                  "max_depth": 2, "discovery": []})
    slow_db = Finding("latency", "db: latency up", 0.8, {}, key="db", service="db", signal="latency")
    source = FakeSource("prometheus", _answers(slow_db))
    started = clock.now() - timedelta(hours=3)  # a late alert: it began three hours ago
    incident = IncidentFacts(uuid.UUID("00000000-0000-4000-8000-000000000001"), "checkout", clock.now(), started)
    commands = [c async for c in correlate(settings, incident, RUN, {"prometheus": source}, clock)]

    [scope] = source.scopes
    assert scope.services == ("checkout", "payments", "db")  # disk is 3 hops down; search is not below
    assert scope.window.anchor == started
    assert (scope.window.start, scope.window.end) == (started - timedelta(minutes=10), started + timedelta(minutes=5))
    assert scope.window.baseline_start == started - timedelta(minutes=70)
    [finding] = [c for c in commands if isinstance(c, RecordFinding)]
    assert (finding.service, finding.signal, finding.finding_id) == ("db", "latency", finding_id(RUN, "prometheus", "latency", "db"))
    hypothesis, *rest = commands[-1].hypotheses
    assert (hypothesis.service, hypothesis.signal, hypothesis.path) == ("db", "latency", ["db", "payments", "checkout"])
    assert hypothesis.evidence == [finding.finding_id]
    assert [h.service for h in rest] == ["checkout"]  # the symptom, which db explains, follows


async def test_command_ids_are_deterministic_so_redelivery_is_harmless() -> None:
    def sources() -> dict:
        return {"prometheus": FakeSource("prometheus", _answers(Finding("error_rate", "s", 0.9, {})))}
    settings = _settings(sources=("prometheus",))
    first = await _collect(settings, sources(), FakeClock())
    second = await _collect(settings, sources(), FakeClock())
    assert [c.command_id for c in first] == [c.command_id for c in second]
    assert len({c.command_id for c in first}) == len(first)


async def test_a_source_slower_than_the_deadline_times_out_and_the_run_completes() -> None:
    clock = FakeClock()
    never = asyncio.Event()

    async def hangs(calls: Calls) -> SourceReport:
        calls.note("sum(rate(slow[5m]))")
        await calls.call("slow", never.wait)
        raise AssertionError("unreachable")

    sources = {"prometheus": FakeSource("prometheus", hangs), "loki": FakeSource("loki", _answers())}
    loop = asyncio.get_running_loop()
    began = loop.time()
    commands = await _collect(_settings(deadline_s=0.2, sources=("prometheus", "loki")), sources, clock)
    assert loop.time() - began < 5  # the per-call timeout (10 s) did not matter
    done = _completions(commands)
    assert done["loki"].outcome == "succeeded"
    slow = done["prometheus"]
    assert slow.outcome == "timed_out" and slow.attempts == 1
    assert slow.queries == ["sum(rate(slow[5m]))"]
    assert slow.error.startswith("still running at the run deadline of 0.2 s")
    assert commands[-1].outcome == "partial"
    assert sources["prometheus"].breaker.consecutive == 0  # cut off, not failed


async def test_failures_are_visible_and_a_crashing_source_does_not_sink_the_run() -> None:
    async def refused(calls: Calls) -> SourceReport:
        async def attempt() -> None:
            raise SourceUnreachable("Prometheus at http://p:9090 unreachable: ConnectError")
        await calls.call("q", attempt)
        raise AssertionError("unreachable")

    async def buggy(calls: Calls) -> SourceReport:
        raise KeyError("items")

    sources = {"prometheus": FakeSource("prometheus", refused), "loki": FakeSource("loki", buggy),
               "kubernetes": FakeSource("kubernetes", _answers(outcome="no_data",
                                                               problems=("no pods match 'app=checkout'",)))}
    commands = await _collect(_settings(), sources, FakeClock())
    done = _completions(commands)
    assert done["prometheus"].outcome == "failed" and done["prometheus"].attempts == 3
    assert done["prometheus"].error.endswith("ConnectError (after 3 attempts)")
    assert done["loki"].outcome == "failed" and done["loki"].error == "internal error: KeyError: 'items'"
    assert done["kubernetes"].outcome == "no_data" and "app=checkout" in done["kubernetes"].error
    assert commands[-1].outcome == "partial"


async def test_an_open_breaker_fails_the_source_without_calling_it() -> None:
    clock = FakeClock()
    source = FakeSource("prometheus", _answers(), clock=clock)
    for _ in range(5):
        source.breaker.failed("connection refused")
    commands = await _collect(_settings(sources=("prometheus",)), {"prometheus": source}, clock)
    done = _completions(commands)["prometheus"]
    assert done.outcome == "failed" and done.attempts == 0
    assert done.error.startswith("circuit open for prometheus after 5 consecutive failures")
    assert commands[-1].outcome == "failed"


async def test_a_source_without_a_client_is_unavailable() -> None:
    commands = await _collect(_settings(sources=("kubernetes",)), {}, FakeClock())
    assert _completions(commands)["kubernetes"].outcome == "unavailable"
    assert commands[-1].outcome == "failed" and commands[-1].hypotheses == []


@pytest.mark.parametrize(("outcomes", "expected"), [
    ({"p": "succeeded", "l": "succeeded", "k": "unavailable"}, "succeeded"),
    ({"p": "succeeded", "l": "no_data"}, "partial"),
    ({"p": "no_data"}, "partial"),
    ({"p": "succeeded", "l": "timed_out"}, "partial"),
    ({"p": "failed", "l": "timed_out", "k": "unavailable"}, "failed"),
    ({"k": "unavailable"}, "failed"),
    ({}, "failed"),
])
def test_run_outcome(outcomes: dict, expected: str) -> None:
    assert run_outcome(outcomes) == expected


def test_start_command_names_every_configured_source() -> None:
    clock = FakeClock()
    command = start_command(_settings(), _incident(clock), RUN, "incident_opened", clock)
    assert isinstance(command, StartCorrelation)
    assert command.sources == ["prometheus", "loki", "kubernetes"] and command.trigger == "incident_opened"


async def test_built_sources_say_why_they_are_unavailable() -> None:
    sources = build_sources(Settings())
    try:
        assert {name: s.unavailable_reason() for name, s in sources.items()} == {
            "prometheus": "not configured: correlation.prometheus.url is not set",
            "loki": "not configured: correlation.loki.url is not set",
            "kubernetes": "not configured: set correlation.kubernetes.enabled (in cluster), host or kubeconfig",
        }
        commands = [c async for c in correlate(Settings(), _incident(FakeClock()), RUN, sources)]
        assert [c.outcome for c in commands if isinstance(c, CompleteCorrelationSource)] == ["unavailable"] * 3
        assert sum(isinstance(c, StartCorrelationSource) for c in commands) == 3
    finally:
        for source in sources.values():
            await source.aclose()
