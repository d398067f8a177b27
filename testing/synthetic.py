"""A synthetic but valid event log, for load tests, benchmarks and crash tests.

Each incident lives through a realistic life (open, correlate over three sources,
acknowledge, alerts, notes, impact, severity change, mitigate, resolve) with
versions 1..n and a sealed hash chain; incidents interleave as they would on a
busy log. Deterministic for a given seed.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

from contracts import events as ev
from contracts.common import Actor, ActorKind
from contracts.hypotheses import Hypothesis
from contracts.events import ZERO_HASH, EventData, EventEnvelope
from foundation.chain import seal

SERVICES = ("checkout", "payments", "search", "auth", "catalog", "shipping")
SOURCES = ("prometheus", "loki", "kubernetes")
USER = Actor(kind=ActorKind.USER, id="alice")
SYSTEM = Actor(kind=ActorKind.SYSTEM, id="warroom")
START = datetime(2025, 1, 6, 9, 0, tzinfo=UTC)

Step = Callable[["_Incident"], tuple[EventData, Actor]]


class _Incident:
    def __init__(self, rng: random.Random, number: int) -> None:
        self.rng = rng
        self.id = uuid.UUID(int=rng.getrandbits(128), version=4)
        self.service = SERVICES[number % len(SERVICES)]
        self.run_id = self._uuid()
        self.fingerprint = f"fp-{number}"
        self.version = 0
        self.prev_hash = ZERO_HASH
        self.steps = _life()

    def _uuid(self) -> uuid.UUID:
        return uuid.UUID(int=self.rng.getrandbits(128), version=4)


def _life() -> list[Step]:
    def source_done(i: int) -> Step:
        outcomes = ("succeeded", "no_data", "failed")
        return lambda inc: (ev.CorrelationSourceCompleted(
            run_id=inc.run_id, source=SOURCES[i], outcome=outcomes[i], attempts=i + 1,
            duration_ms=120 * (i + 1), error="HTTP 503 from source" if outcomes[i] == "failed" else None,
            queries=[f'sum(rate(http_requests_total{{service="{inc.service}"}}[5m]))']), SYSTEM)

    return [
        lambda inc: (ev.IncidentOpened(title=f"High error rate on {inc.service}", service=inc.service,
                                       severity="high", labels={"service": inc.service}), USER),
        lambda inc: (ev.CorrelationStarted(run_id=inc.run_id, sources=list(SOURCES), trigger="opened"), SYSTEM),
        lambda inc: (ev.StatusChanged(from_="open", to="investigating", reason="correlation started"), SYSTEM),
        *[(lambda i: lambda inc: (ev.CorrelationSourceStarted(run_id=inc.run_id, source=SOURCES[i]), SYSTEM))(i)
          for i in range(3)],
        *[source_done(i) for i in range(3)],
        lambda inc: (ev.FindingRecorded(
            run_id=inc.run_id, finding_id=inc._uuid(), source="prometheus", kind="errors",
            summary="5xx ratio rose from 0.2% to 12%", confidence=0.82, changed_at=START,
            evidence={"query": "sum(rate(...))", "window": "5m", "values": [0.002, 0.12]},
            service=inc.service, signal="errors"), SYSTEM),
        lambda inc: (ev.CorrelationCompleted(run_id=inc.run_id, outcome="partial", hypotheses=[
            Hypothesis(rank=1, service=inc.service, signal="errors", confidence=0.82, path=[inc.service],
                       started_at=START, summary="Bad deploy of " + inc.service)]), SYSTEM),
        lambda inc: (ev.IncidentAcknowledged(by="alice"), USER),
        lambda inc: (ev.AlertAttached(fingerprint=inc.fingerprint, alertname="HighErrorRate",
                                      labels={"service": inc.service}, annotations={"summary": "5xx"},
                                      starts_at=START), SYSTEM),
        lambda inc: (ev.NoteAdded(note_id=inc._uuid(), text="Rolling back the last deploy", author="alice"), USER),
        lambda inc: (ev.ImpactAssessed(slo=f"{inc.service}-availability", burn_rate=14.4,
                                       error_budget_left=0.63, estimated_cost=1200.0, window="30d"), SYSTEM),
        lambda inc: (ev.SeverityChanged(from_="high", to="critical", reason="customers affected"), USER),
        lambda inc: (ev.AlertResolved(fingerprint=inc.fingerprint, ends_at=START, firing_left=0), SYSTEM),
        lambda inc: (ev.StatusChanged(from_="investigating", to="mitigated", reason="rolled back"), USER),
        lambda inc: (ev.StatusChanged(from_="mitigated", to="resolved", reason="error rate normal"), USER),
    ]


LIFE_LENGTH = len(_life())


def synthetic_log(events: int, *, seed: int = 7, concurrent: int = 50) -> Iterator[EventEnvelope]:
    """`events` sealed events over about events / LIFE_LENGTH incidents, at most
    `concurrent` of them in flight at once; each incident's versions are in order."""
    rng = random.Random(seed)
    active: list[_Incident] = []
    opened = 0
    clock = START
    for _ in range(events):
        if len(active) < concurrent:
            active.append(_Incident(rng, opened))
            opened += 1
        incident = active[rng.randrange(len(active))]
        data, actor = incident.steps[incident.version](incident)
        incident.version += 1
        clock += timedelta(milliseconds=rng.randint(1, 900))
        envelope = seal(
            event_id=incident._uuid(), incident_id=incident.id, version=incident.version, data=data,
            occurred_at=clock, recorded_at=clock, causation_id=incident._uuid(),
            correlation_id=incident.id, actor=actor, prev_hash=incident.prev_hash,
        )
        incident.prev_hash = envelope.hash
        if incident.version == len(incident.steps):
            active.remove(incident)
        yield envelope
