"""One correlation run over the configured sources, as the commands it produces.

A run looks at the incident's own time (`window.analysis_window`) and at the incident's
service and its dependencies: the symptom first, then its callees through the service
graph, breadth first within `topology.max_depth` hops and `topology.max_candidates`
services (`foundation.topology.candidates`). Every source examines that same scope. The
findings, each naming its service and signal, are ranked by `rootcause.rank_causes`.

`correlate` yields, in order: `StartCorrelationSource` for every configured source;
then for each source, as it finishes, exactly one `CompleteCorrelationSource` followed by
a `RecordFinding` per finding; at the run deadline the sources still running complete
`timed_out`; last, one `CompleteCorrelation` with the ranked hypotheses. It appends
nothing itself: the caller sends each command to the decider.

How the run's outcome is decided:
- `unavailable` sources (not configured) do not count either way;
- `succeeded` when every other source succeeded;
- `partial` when at least one answered (`succeeded` or `no_data`) but not all succeeded;
- `failed` when none answered, including when no source is configured at all.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import httpx

from contracts.commands import (
    CommandBase,
    CompleteCorrelation,
    CompleteCorrelationSource,
    RecordFinding,
    StartCorrelation,
    StartCorrelationSource,
)
from contracts.common import SYSTEM, Actor, ActorKind
from contracts.events import RunOutcome, SourceOutcome
from streams.correlation.kubernetes import KubernetesSource
from streams.correlation.loki import LokiSource
from streams.correlation.model import Finding, IncidentFacts, Scope, Source, SourceReport
from streams.correlation.prometheus import PrometheusSource
from streams.correlation.resilience import SYSTEM_CLOCK, Calls, CircuitBreaker, Clock, Policy, SourceError
from streams.correlation.rootcause import Evidence, rank_causes
from streams.correlation.topology import Topology, TopologyView, configured_edges
from streams.correlation.window import analysis_window
from foundation.settings import Settings
from foundation.topology import ServiceGraph, candidates

log = logging.getLogger(__name__)


def build_sources(settings: Settings, clock: Clock = SYSTEM_CLOCK) -> dict[str, Source]:
    """Every source named in `correlation.sources`, each with its own circuit breaker.

    Build once per process and reuse across runs (the breakers must remember); no
    connection is made until a run asks. Close with `close_sources`."""
    corr = settings.correlation

    def breaker(name: str) -> CircuitBreaker:
        return CircuitBreaker(name, corr.breaker_failures, corr.breaker_reset_s, clock)

    def http(url: str | None) -> httpx.AsyncClient | None:
        return httpx.AsyncClient(timeout=corr.timeout_s) if url else None

    built: dict[str, Source] = {}
    for name in corr.sources:
        if name == "prometheus":
            built[name] = PrometheusSource(corr.prometheus, breaker(name), http(corr.prometheus.url))
        elif name == "loki":
            built[name] = LokiSource(corr.loki, breaker(name), http(corr.loki.url))
        elif name == "kubernetes":
            built[name] = KubernetesSource(corr.kubernetes, breaker(name), corr.timeout_s)
    return built


async def close_sources(sources: Mapping[str, Source]) -> None:
    for source in sources.values():
        await source.aclose()


def start_command(settings: Settings, incident: IncidentFacts, run_id: UUID, trigger: str,
                  clock: Clock = SYSTEM_CLOCK, actor: Actor = SYSTEM) -> StartCorrelation:
    """The command that opens a run over the configured sources."""
    return StartCorrelation(
        command_id=uuid.uuid5(run_id, "StartCorrelation"), incident_id=incident.id, actor=actor,
        issued_at=clock.now(), correlation_id=run_id, run_id=run_id,
        sources=list(settings.correlation.sources), trigger=trigger)


def finding_id(run_id: UUID, source: str, kind: str, key: str = "") -> UUID:
    """Deterministic within a run, so a redelivered finding is the same finding."""
    return uuid.uuid5(run_id, f"{source}:{kind}" + (f":{key}" if key else ""))


def run_outcome(outcomes: Mapping[str, SourceOutcome]) -> RunOutcome:
    """The run's outcome from its sources' (see the module docstring)."""
    counted = [o for o in outcomes.values() if o != "unavailable"]
    if counted and all(o == "succeeded" for o in counted):
        return "succeeded"
    if any(o in ("succeeded", "no_data") for o in counted):
        return "partial"
    return "failed"


@dataclass
class _Running:
    source: Source
    calls: Calls
    started: float


async def scope_of(settings: Settings, incident: IncidentFacts, topology: Topology | None,
                   clock: Clock = SYSTEM_CLOCK) -> tuple[Scope, TopologyView]:
    """The window and the services a run at `clock.now()` examines, and the graph it walked."""
    window = analysis_window(incident, settings.correlation, clock.now())
    view = await topology.view(window.end) if topology is not None else TopologyView(
        ServiceGraph.of(configured_edges(settings)))
    for report in view.discovery:
        if report.error is not None:
            log.warning("incident %s: topology discovery %s failed: %s", incident.id, report.name, report.error)
    chosen = candidates(view.graph.callees(), incident.service, settings.topology.max_depth,
                        settings.topology.max_candidates)
    return Scope(window, tuple(service for service, _ in chosen)), view


async def correlate(settings: Settings, incident: IncidentFacts, run_id: UUID,
                    sources: Mapping[str, Source], clock: Clock = SYSTEM_CLOCK,
                    topology: Topology | None = None) -> AsyncIterator[CommandBase]:
    """The commands of one run, in the order they should be sent (module docstring).

    Sources run concurrently; the deadline (`correlation.run_deadline_s`) starts at the
    first iteration and holds even while the caller is busy sending. Without `topology`
    the graph is the configured edges alone (no discovery)."""
    corr = settings.correlation
    loop = asyncio.get_running_loop()
    deadline = loop.time() + corr.run_deadline_s
    names: Sequence[str] = list(corr.sources)
    make = _Commands(incident, run_id, clock)
    outcomes: dict[str, SourceOutcome] = {}
    recorded: list[Evidence] = []

    for name in names:
        yield make.start_source(name)
    scope, view = await scope_of(settings, incident, topology, clock)
    running: dict[asyncio.Task[SourceReport], tuple[str, _Running]] = {}
    try:
        for name in names:
            source = sources.get(name)
            reason = "no client was built for this source" if source is None else source.unavailable_reason()
            if reason is not None:
                outcomes[name] = "unavailable"
                yield make.complete(name, "unavailable", None, 0, reason)
                continue
            assert source is not None
            state = _Running(source, Calls(Policy.from_settings(corr), source.breaker, clock), clock.monotonic())
            task = asyncio.create_task(source.investigate(incident, scope, state.calls), name=f"correlate-{name}")
            running[task] = (name, state)

        while running:
            done, _ = await asyncio.wait(running, timeout=max(deadline - loop.time(), 0),
                                         return_when=asyncio.FIRST_COMPLETED)
            if not done:
                break
            for task in sorted(done, key=lambda t: names.index(running[t][0])):
                name, state = running.pop(task)
                outcome, error, report = _settled(name, task)
                outcomes[name] = outcome
                elapsed = _ms(clock.monotonic() - state.started)
                yield make.complete(name, outcome, state.calls, elapsed, error)
                for finding in report.findings if report else []:
                    command = make.finding(name, finding)
                    recorded.append(_evidence(command, finding))
                    yield command

        for task, (name, state) in sorted(running.items(), key=lambda item: names.index(item[1][0])):
            task.cancel()
            outcomes[name] = "timed_out"
            what = f"; last query: {state.calls.queries[-1]}" if state.calls.queries else ""
            yield make.complete(name, "timed_out", state.calls, _ms(clock.monotonic() - state.started),
                                f"still running at the run deadline of {corr.run_deadline_s:g} s "
                                f"({state.calls.attempts} attempt(s) made{what})")
        if running:
            await asyncio.gather(*running, return_exceptions=True)
            running.clear()
    finally:
        for task in running:  # the caller stopped iterating early
            task.cancel()

    yield CompleteCorrelation(
        command_id=uuid.uuid5(run_id, "CompleteCorrelation"), incident_id=incident.id, actor=SYSTEM,
        issued_at=clock.now(), correlation_id=run_id, run_id=run_id,
        outcome=run_outcome(outcomes),
        hypotheses=rank_causes(recorded, view.graph.callees(), incident.service, settings.topology.max_depth,
                               symptom_signal=_alerted_signal(settings, incident)))


def _alerted_signal(settings: Settings, incident: IncidentFacts) -> str | None:
    """The symptom's signal as the alert names it, when it is one the source reads."""
    named = incident.symptom_signal
    return named if named in settings.correlation.prometheus.signals else None


def _evidence(command: RecordFinding, finding: Finding) -> Evidence:
    return Evidence(finding_id=command.finding_id, source=command.source, service=command.service,
                    signal=command.signal, confidence=command.confidence, summary=command.summary,
                    changed_at=command.changed_at, anomaly=finding.anomaly)


def _settled(name: str, task: asyncio.Task[SourceReport]) -> tuple[SourceOutcome, str | None, SourceReport | None]:
    exc = task.exception()
    if exc is None:
        report = task.result()
        return report.outcome, report.error, report
    if isinstance(exc, SourceError):
        return "failed", str(exc), None
    # A bug in a source must still end the source visibly, not kill the run.
    log.error("correlation source %s crashed", name, exc_info=exc)
    return "failed", f"internal error: {type(exc).__name__}: {exc}", None


def _ms(seconds: float) -> int:
    return max(int(round(seconds * 1000)), 0)


@dataclass(frozen=True)
class _Commands:
    incident: IncidentFacts
    run_id: UUID
    clock: Clock

    def _base(self, kind: str, source: str) -> dict[str, Any]:
        return {"command_id": uuid.uuid5(self.run_id, f"{kind}:{source}"), "incident_id": self.incident.id,
                "actor": Actor(kind=ActorKind.SOURCE, id=source), "issued_at": self.clock.now(),
                "correlation_id": self.run_id, "run_id": self.run_id, "source": source}

    def start_source(self, source: str) -> StartCorrelationSource:
        return StartCorrelationSource(**self._base("StartCorrelationSource", source))

    def complete(self, source: str, outcome: SourceOutcome, calls: Calls | None, duration_ms: int,
                 error: str | None) -> CompleteCorrelationSource:
        """`calls` is None for a source that was never asked."""
        return CompleteCorrelationSource(
            **self._base("CompleteCorrelationSource", source), outcome=outcome,
            attempts=calls.attempts if calls else 0, duration_ms=duration_ms,
            error=error[:4000] if error else None, queries=list(calls.queries) if calls else [])

    def finding(self, source: str, finding: Finding) -> RecordFinding:
        """A finding that names no service is about the incident's own."""
        fid = finding_id(self.run_id, source, finding.kind, finding.key)
        return RecordFinding(
            **(self._base("RecordFinding", source) | {"command_id": uuid.uuid5(fid, "RecordFinding")}),
            finding_id=fid, kind=finding.kind, summary=finding.summary[:2000],
            confidence=min(max(finding.confidence, 0.0), 1.0), changed_at=finding.changed_at,
            evidence=finding.evidence, service=finding.service or self.incident.service,
            signal=finding.signal or finding.kind)
