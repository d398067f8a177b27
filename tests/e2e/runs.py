"""A correlation run fed to the decider as commands, exactly as the worker's correlation
agent sends them, with hypotheses chosen by the test.

The run's commands go onto the commands topic in one burst, keyed by the incident, so the
decider appends the whole run (start to `CorrelationCompleted`) before the agent even sees
its `CorrelationStarted`; what the agent sends for the run afterwards is a no-op (every
source is already completed, the run done).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from uuid import UUID, uuid4

from aiokafka import AIOKafkaProducer

from contracts.commands import (
    CommandBase, CompleteCorrelation, CompleteCorrelationSource, RecordFinding, StartCorrelation,
    StartCorrelationSource,
)
from contracts.common import SYSTEM, Actor, ActorKind
from contracts.hypotheses import Hypothesis
from stack import Stack


def suspect(rank: int, service: str, signal: str, confidence: float, path: list[str],
            summary: str = "") -> Hypothesis:
    return Hypothesis(rank=rank, service=service, signal=signal, confidence=confidence, path=path,
                      started_at=datetime.now(UTC), summary=summary, sources=["prometheus"])


@dataclass(frozen=True)
class Found:
    """A finding a run records: about which service and signal, its summary, confidence
    and evidence; its kind is the signal unless told."""

    service: str
    signal: str
    summary: str
    confidence: float
    evidence: dict[str, Any] = field(default_factory=dict)
    changed_at: datetime | None = None
    source: str = "prometheus"
    kind: str | None = None


def completed_run(stack: Stack, incident: str, hypotheses: list[Hypothesis],
                  found: list[Found] | None = None) -> tuple[UUID, list[CommandBase]]:
    """The commands of one run over the stack's sources that ends with `hypotheses`:
    every source succeeds, Prometheus finds one anomaly per hypothesis (or `found`, and
    each hypothesis cites those about its service)."""
    run, incident_id = uuid4(), UUID(incident)
    sources = list(stack.settings.correlation.sources)

    def base(actor: Actor = SYSTEM) -> dict:
        return {"command_id": uuid4(), "incident_id": incident_id, "actor": actor, "issued_at": datetime.now(UTC),
                "correlation_id": run, "run_id": run}

    def by(source: str) -> Actor:
        return Actor(kind=ActorKind.SOURCE, id=source)

    commands: list[CommandBase] = [StartCorrelation(**base(), sources=sources, trigger="manual")]
    commands += [StartCorrelationSource(**base(by(name)), source=name) for name in sources]
    for name in sources:
        commands.append(CompleteCorrelationSource(**base(by(name)), source=name, outcome="succeeded", attempts=1,
                                                  duration_ms=40))
    if found is None:
        found = [Found(h.service, h.signal, h.summary or f"{h.signal} of {h.service} changed", h.confidence,
                       {"query": f'{h.signal}{{service="{h.service}"}}'}, h.started_at) for h in hypotheses]
    findings = [RecordFinding(**base(by(f.source)), finding_id=uuid4(), source=f.source, kind=f.kind or f.signal,
                              summary=f.summary, confidence=f.confidence, changed_at=f.changed_at,
                              evidence=f.evidence, service=f.service, signal=f.signal) for f in found]
    commands += findings
    typed = [h.model_copy(update={"evidence": [f.finding_id for f in findings if f.service == h.service]})
             for h in hypotheses]
    commands.append(CompleteCorrelation(**base(), outcome="succeeded",
                                        hypotheses=[h.model_dump(mode="json") for h in typed]))
    return run, commands


async def send(stack: Stack, commands: list[CommandBase]) -> None:
    """Put `commands` on the stack's commands topic in order, keyed by incident."""
    producer = AIOKafkaProducer(bootstrap_servers=stack.settings.kafka.bootstrap, acks="all",
                                enable_idempotence=True)
    await producer.start()
    try:
        sent = [await producer.send(stack.settings.topics.name("commands"),
                                    command.model_dump_json(by_alias=True).encode(),
                                    key=str(command.incident_id).encode())
                for command in commands]
        for future in sent:
            await future
    finally:
        await producer.stop()


async def feed_run(stack: Stack, incident: str, hypotheses: list[Hypothesis], found: list[Found] | None = None) -> UUID:
    """Feed one completed run with `hypotheses` (and `found`) to `incident`; its run id."""
    run, commands = completed_run(stack, incident, hypotheses, found)
    await send(stack, commands)
    return run
