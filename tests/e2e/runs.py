"""A correlation run fed to the decider as commands, exactly as the worker's correlation
agent sends them, with hypotheses chosen by the test.

The run's commands go onto the commands topic in one burst, keyed by the incident, so the
decider appends the whole run (start to `CorrelationCompleted`) before the agent even sees
its `CorrelationStarted`; what the agent sends for the run afterwards is a no-op (every
source is already completed, the run done).
"""

from __future__ import annotations

from datetime import UTC, datetime
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


def completed_run(stack: Stack, incident: str, hypotheses: list[Hypothesis]) -> tuple[UUID, list[CommandBase]]:
    """The commands of one run over the stack's sources that ends with `hypotheses`:
    every source succeeds, Prometheus finds one anomaly per hypothesis."""
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
    findings = []
    for h in hypotheses:
        finding = RecordFinding(**base(by("prometheus")), finding_id=uuid4(), source="prometheus", kind=h.signal,
                                service=h.service, signal=h.signal,
                                summary=h.summary or f"{h.signal} of {h.service} changed", confidence=h.confidence,
                                changed_at=h.started_at, evidence={"service": h.service,
                                                                   "query": f'{h.signal}{{service="{h.service}"}}'})
        findings.append(finding)
    commands += findings
    typed = [h.model_copy(update={"evidence": [f.finding_id]}) for h, f in zip(hypotheses, findings)]
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


async def feed_run(stack: Stack, incident: str, hypotheses: list[Hypothesis]) -> UUID:
    """Feed one completed run with `hypotheses` to `incident`; its run id."""
    run, commands = completed_run(stack, incident, hypotheses)
    await send(stack, commands)
    return run
