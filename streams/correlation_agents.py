"""The correlation agents: events in, correlation and impact commands out (SPEC §4).

One Faust agent reads the events topic and reacts to four facts:
- `IncidentOpened` sends the `StartCorrelation` of the opening run (its run id is
  derived from the incident id, so a redelivered open starts the same run), and
  assesses SLO impact once;
- `AlertAttached` (the first one) gives the moment runs are anchored at: the alert's
  `starts_at` (`streams.correlation.window`);
- `CorrelationStarted` runs `correlate` for that run in a background task and sends
  each command it yields, in order, keyed by incident id;
- `StatusChanged`, `ImpactAssessed` keep the list of unresolved incidents and their last
  impact numbers, which a timer reassesses every `impact.interval_s`.

A run is worked on even when no source is configured: each source then completes
`unavailable` with its reason, so a missing configuration is visible on the incident
instead of a run that never ends. `correlation.on_open = false` stops the automatic
run on open; requested runs always proceed.

The agents never append events; the decider does. Redelivery is harmless: command ids
are deterministic and the decider skips commands and sources it has already seen.
What is kept in memory (the facts of incidents this worker saw open, the last impact
numbers) is rebuilt from the events after a restart only for incidents whose events
are read again; a run on an incident it never saw open takes the service, the opening
time and the first alert's start from the decider's table.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime

import mode
from faust.types import StreamT, TopicT
from faust.types.tuples import Message
from pydantic import ValidationError

from contracts.commands import CommandBase
from contracts.common import Status
from contracts.events import (
    AlertAttached,
    CorrelationStarted,
    EventEnvelope,
    ImpactAssessed,
    IncidentOpened,
    StatusChanged,
)
from streams.app import Streams
from streams.partition import send_dead_letter
from streams.correlation import (
    IncidentFacts,
    Source,
    assess_impact,
    build_sources,
    close_sources,
    correlate,
    start_command,
)
from streams.correlation.topology import Topology

log = logging.getLogger(__name__)

MAX_RUNS = 16  # correlation runs in flight per worker


def opening_run_id(incident_id: uuid.UUID) -> uuid.UUID:
    """The run that `IncidentOpened` starts: the same on every redelivery."""
    return uuid.uuid5(incident_id, "opened")


@dataclass
class Watched:
    """An unresolved incident this worker assesses, and its last numbers per SLO."""

    facts: IncidentFacts
    impact: dict[str, ImpactAssessed] = field(default_factory=dict)


class CorrelationDesk:
    """The I/O of the correlation agent: what each event causes, sent to the commands topic."""

    def __init__(self, streams: Streams, max_runs: int = MAX_RUNS) -> None:
        self.streams = streams
        self.settings = streams.settings
        self.commands_topic = streams.settings.topics.name("commands")
        self.sources: dict[str, Source] | None = None
        self.topology: Topology | None = None
        self.facts: dict[uuid.UUID, IncidentFacts] = {}
        self.open: dict[uuid.UUID, Watched] = {}
        self.runs: set[asyncio.Task] = set()
        self.slots = asyncio.Semaphore(max_runs)

    async def handle(self, message: Message) -> None:
        """React to one events-topic record; poison goes to the DLQ."""
        try:
            event = EventEnvelope.model_validate_json(message.value or b"")
        except ValidationError as err:
            await self._dead_letter(message, f"not a valid event: {err.errors(include_url=False, include_input=False)[:3]}")
            return
        data = event.data
        if isinstance(data, IncidentOpened):
            facts = IncidentFacts(event.incident_id, data.service, event.occurred_at)
            self.facts[event.incident_id] = facts
            self.open[event.incident_id] = Watched(facts)
            if self.settings.correlation.on_open and not self._has_run(event.incident_id, opening_run_id(event.incident_id)):
                await self.send([start_command(self.settings, facts, opening_run_id(event.incident_id), "opened")])
            self._spawn(self.assess(self.open[event.incident_id]), f"impact-{event.incident_id}")
        elif isinstance(data, AlertAttached):
            facts = self.facts.get(event.incident_id)
            if facts is not None and facts.alert_started_at is None:
                label = self.settings.correlation.symptom_signal_label
                self.facts[event.incident_id] = replace(
                    facts, alert_started_at=data.starts_at,
                    symptom_signal=data.labels.get(label) if label else None)
                if event.incident_id in self.open:
                    self.open[event.incident_id].facts = self.facts[event.incident_id]
        elif isinstance(data, CorrelationStarted):
            if self._run_done(event.incident_id, data.run_id):
                return  # read again after a restart: the run already completed
            facts = self._facts(event.incident_id, event.occurred_at)
            if facts is not None:
                self._spawn(self.correlate(facts, data.run_id), f"correlate-{data.run_id}")
        elif isinstance(data, StatusChanged):
            if data.to == Status.RESOLVED:
                # Forgotten to keep memory bounded; a later run takes the service from the table.
                self.open.pop(event.incident_id, None)
                self.facts.pop(event.incident_id, None)
            elif data.from_ == Status.RESOLVED:
                facts = self._facts(event.incident_id, event.occurred_at)
                if facts is not None:
                    self.open.setdefault(event.incident_id, Watched(facts))
        elif isinstance(data, ImpactAssessed):
            watched = self.open.get(event.incident_id)
            if watched is not None:
                watched.impact[data.slo] = data

    async def correlate(self, facts: IncidentFacts, run_id: uuid.UUID) -> None:
        """Run one correlation and send its commands in order."""
        async with self.slots:
            sources = self._sources()
            try:
                async for command in correlate(self.settings, facts, run_id, sources, topology=self.topology):
                    await self.send([command])
            except Exception:
                # A redelivered CorrelationStarted (or a manual rerun) can try again.
                log.exception("correlation run %s of incident %s stopped", run_id, facts.id)

    async def assess(self, watched: Watched) -> None:
        """Assess the incident's SLOs once and send what moved."""
        if not self.settings.impact.slos:
            return
        try:
            # Share the Prometheus source's connection pool and circuit breaker.
            prometheus = self._sources().get("prometheus")
            client = getattr(prometheus, "client", None)
            commands = await assess_impact(
                self.settings, watched.facts, dict(watched.impact),
                http=client.http if client is not None else None,
                breaker=prometheus.breaker if prometheus is not None else None)
            await self.send(commands)
        except Exception:
            log.exception("impact of incident %s not assessed", watched.facts.id)

    async def assess_all(self) -> None:
        """One assessment of every unresolved incident this worker watches."""
        await asyncio.gather(*(self.assess(watched) for watched in list(self.open.values())))

    async def send(self, commands: Iterable[CommandBase]) -> None:
        """Send each command keyed by its incident id, in order; return once the broker holds them."""
        producer = await self.streams.app.maybe_start_producer()
        acks = [await producer.send(self.commands_topic, str(command.incident_id).encode(),
                                    command.model_dump_json(by_alias=True).encode(), None, None, None)
                for command in commands]
        if acks:
            await asyncio.gather(*acks)

    async def close(self) -> None:
        for task in list(self.runs):
            task.cancel()
        await asyncio.gather(*self.runs, return_exceptions=True)
        if self.sources is not None:
            await close_sources(self.sources)
            self.sources = None
        if self.topology is not None:
            await self.topology.aclose()
            self.topology = None

    def _sources(self) -> dict[str, Source]:
        # Built on first use, inside the worker's loop; the breakers then outlive runs.
        if self.sources is None:
            self.sources = build_sources(self.settings)
            self.topology = Topology(self.settings)
        return self.sources

    def _spawn(self, work, name: str) -> None:
        task = asyncio.ensure_future(work)
        task.set_name(name)
        self.runs.add(task)
        task.add_done_callback(self.runs.discard)

    def _facts(self, incident_id: uuid.UUID, seen_at: datetime) -> IncidentFacts | None:
        facts = self.facts.get(incident_id)
        if facts is not None:
            return facts
        applied = self.streams.incidents.get(str(incident_id))
        state = applied.state if applied is not None else None
        if state is None:
            log.warning("incident %s: no service known, correlation not run", incident_id)
            return None
        # Opened before this worker's memory: the table knows when (a state written before
        # it kept that has only the moment this run was asked for).
        facts = IncidentFacts(incident_id, state.service, state.opened_at or seen_at, state.first_alert_at)
        self.facts[incident_id] = facts
        return facts

    def _state(self, incident_id: uuid.UUID):
        applied = self.streams.incidents.get(str(incident_id))
        return applied.state if applied is not None else None

    def _has_run(self, incident_id: uuid.UUID, run_id: uuid.UUID) -> bool:
        state = self._state(incident_id)
        return state is not None and state.run(run_id) is not None

    def _run_done(self, incident_id: uuid.UUID, run_id: uuid.UUID) -> bool:
        state = self._state(incident_id)
        run = state.run(run_id) if state is not None else None
        return run is not None and run.done

    async def _dead_letter(self, message: Message, reason: str) -> None:
        await (await send_dead_letter(self.streams, message, reason))


def _raw_events(streams: Streams) -> TopicT:
    # key_type/value_type bytes as the intake's view of the same topic, so Faust never
    # hands us another channel's decoding; an event we cannot read still reaches the DLQ.
    return streams.app.topic(
        streams.settings.topics.name("events"), key_type=bytes, value_type=bytes,
        key_serializer="raw", value_serializer="raw", partitions=streams.settings.topics.partitions)


def install_correlation(streams: Streams, *, max_runs: int = MAX_RUNS) -> CorrelationDesk:
    """Attach the correlation agent and the impact timer to `streams.app`; return the desk."""
    desk = CorrelationDesk(streams, max_runs)
    app = streams.app

    @app.agent(_raw_events(streams), name="correlation", supervisor_strategy=mode.CrashingSupervisor)
    async def correlation(stream: StreamT) -> None:
        async for record in stream.events():
            await desk.handle(record.message)

    if streams.settings.impact.slos:
        @app.timer(streams.settings.impact.interval_s, name="impact")
        async def impact() -> None:
            await desk.assess_all()

    @app.service
    class Closing(mode.Service):
        async def on_stop(self) -> None:
            await desk.close()

    return desk
