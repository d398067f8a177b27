"""The intake agents: alerts in, commands out, one table entry per group (SPEC §5).

Two thin shells around `streams.intake`:

- `intake` reads the alerts topic as raw bytes, and the intake's own notices topic.
  An alert that is not JSON, not a valid `contracts.Alert` or not storable goes to the
  DLQ with its bytes, origin and reason. A group's state lives in the partition its key
  hashes to, so an alert keyed by its group key (as the gateway, the CLI and the README's
  producers key them) is taken in where it arrives: the group from the `intake-groups`
  table reacts (`streams.intake.Intake`), its commands go to the commands topic keyed by
  incident id (an `OpenIncident` before the `AttachAlert` that follows it: one
  partition, so in order), and the group is stored. An alert keyed otherwise is first
  forwarded, as an `AlertNotice` keyed by its group, to the notices topic, and taken in
  when it comes back in the right partition.
- `incident-watch` reads the events topic and tells a group when its incident opened,
  resolved or reopened (`IncidentNotice`, on the notices topic, keyed by group). It
  keeps what it needs per incident in the `intake-watched` table.

Delivery is at least once, as for the decider: a batch's output is acknowledged by the
broker before its table entries are written and its input is acknowledged, so a crash
repeats work rather than losing it. Repeats are harmless: command ids are derived from
the group's state and the notice, so the decider recognises them; a group keeps the
offsets of the last alert and notice records it applied and skips those at or below;
an incident notice carries the event version it reports.

Records go straight to the app's producer, as the decider sends them, and each agent
takes its input in pipelined batches: throughput is the point (SPEC §12: 5,000 alerts/s),
and every hop through a Faust stream costs more than the intake's own work.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

import mode
from faust.serializers import codecs
from faust.types import EventT, StreamT, TableT, TopicT
from aiokafka.partitioner import murmur2
from faust.types.tuples import Message
from pydantic import ValidationError

from contracts.alerts import Alert
from streams.app import Streams, record_persisted, send_dead_letter
from streams.codec import PydanticCodec
from streams.intake import (
    NOTICE_ADAPTER,
    AlertNotice,
    Group,
    IncidentNotice,
    Intake,
    Watched,
    alert_notice,
    refusal,
    watch,
)

log = logging.getLogger(__name__)

BATCH_MAX = 1000
BATCH_WAIT_S = 0.01  # bounds the latency a lone alert pays for batching
IN_FLIGHT = 4  # batches handled and sent but not yet acknowledged by the broker

GROUP_STATE = "warroom.intake-group"
WATCHED_STATE = "warroom.intake-watched"

Acknowledge = Callable[[EventT], Awaitable[bool]]


@dataclass(frozen=True, slots=True)
class Kept:
    """What the `intake-groups` table keeps per group: the group, and the offsets of the
    last alert and notice records it reflects (a redelivered record at or below is skipped)."""

    group: Group = Group()
    alerts_offset: int = -1
    notices_offset: int = -1


class Poison(Exception):
    """An alert record that cannot be taken in; `reason` goes to the DLQ."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def parse_alert(value: bytes | None, max_bytes: int | None = None) -> Alert:
    """The alert in a raw alerts-topic record, or `Poison` saying why there is none.

    A record over `max_bytes` is refused unread: the commands made of it could not be sent."""
    if value is None:
        raise Poison("empty message")
    if max_bytes is not None and len(value) > max_bytes:
        raise Poison(f"too large: {len(value)} bytes, an alert may take {max_bytes} "
                     f"(kafka.max_message_bytes less room for the commands made of it)")
    try:
        return Alert.model_validate_json(value)
    except ValidationError as err:
        problems = err.errors(include_url=False)
        if any(p["type"] == "json_invalid" for p in problems):
            raise Poison(f"not valid JSON: {problems[0]['msg']}") from None
        detail = "; ".join(
            f"{'.'.join(map(str, p['loc'])) or 'value'}: {p['msg']}" for p in problems[:5])
        raise Poison(f"not a valid alert: {detail}") from None


@dataclass(frozen=True)
class IntakeTopology:
    """What the intake declares on the app, beside what `streams.app` declares."""

    alerts_and_notices: TopicT  # raw bytes: an alert we cannot read still reaches the DLQ intact
    events: TopicT  # raw bytes, read without full validation: only three types matter
    notices: str  # the topic alerts and incident changes reach their group's partition by
    groups: TableT  # group key -> Kept
    watched: TableT  # incident id -> streams.intake.Watched


def declare(streams: Streams) -> IntakeTopology:
    """Declare the intake's topics and tables on `streams.app`; makes no connection."""
    for name, model in ((GROUP_STATE, Kept), (WATCHED_STATE, Watched)):
        if name not in codecs.codecs:
            codecs.register(name, PydanticCodec(model=model))
    app, names, n = streams.app, streams.settings.topics, streams.settings.topics.partitions

    def raw(*topics: str, **options: Any) -> TopicT:
        # key_type/value_type bytes: Faust shares a decoded message between channels of the
        # same topic only when these match, so our raw view never gets another's decoding.
        return app.topic(*topics, key_type=bytes, value_type=bytes, key_serializer="raw",
                         value_serializer="raw", partitions=n, **options)

    def table(name: str, codec: str) -> TableT:
        # As streams.app does for `incidents`: the changelog is declared with our codec.
        changelog = app.topic(
            f"{app.conf.id}-{name}-changelog", key_type=str, key_serializer="raw",
            value_serializer=codec, partitions=n, compacting=True, acks=False, internal=True,
            maxsize=131_072, allow_empty=True)
        declared = app.Table(name, partitions=n, default=None, key_type=str,
                             changelog_topic=changelog)
        declared.key_serializer, declared.value_serializer = "raw", codec
        return declared

    notices = f"{app.conf.id}-intake-notices"
    return IntakeTopology(
        # Internal, so that Faust creates the notices topic (the alerts topic exists already).
        alerts_and_notices=raw(names.name("alerts"), notices, internal=True),
        events=raw(names.name("events")),
        notices=notices,
        groups=table("intake-groups", GROUP_STATE),
        watched=table("intake-watched", WATCHED_STATE),
    )


class Shell:
    """One agent's I/O: the producer, dead letters, table writes, and the pipeline.

    `apply` handles a batch up to the records it sends and returns a future that finishes
    it: the broker's acks, then the table entries, then the input acknowledged. Batches
    are pipelined (while one awaits its acks the next is handled on the entries the
    earlier left, kept in `pending`) and finished strictly in order.
    """

    table: TableT | None = None

    def __init__(self, streams: Streams, topology: IntakeTopology) -> None:
        self.streams = streams
        self.topology = topology
        self.settings = streams.settings
        self.notices_topic = topology.notices
        self.pending: dict[str, Any] = {}  # handled and sent, not yet in the table
        self._last: asyncio.Future | None = None
        self._producer = None

    async def handle(self, batch: Sequence[EventT]) -> tuple[list[asyncio.Future], dict[str, tuple[int, Any]]]:
        """Send what `batch` causes; return the acks to await and the table entries to write."""
        raise NotImplementedError

    def entry(self, key: str) -> Any:
        """The latest entry for `key`: pending, else in the table."""
        found = self.pending.get(key)
        return found if found is not None else self.table.get(key)

    async def apply(self, batch: Sequence[EventT], ack: Acknowledge) -> asyncio.Future:
        acks, written = await self.handle(batch)
        for key, (_, value) in written.items():
            self.pending[key] = value
        self._last = asyncio.ensure_future(self._finish(self._last, acks, written, batch, ack))
        return self._last

    async def _finish(self, previous: asyncio.Future | None, acks: list[asyncio.Future],
                      written: dict[str, tuple[int, Any]], batch: Sequence[EventT],
                      ack: Acknowledge) -> None:
        try:
            if previous is not None:
                await previous  # a failure of the batch before fails this one too
            if acks:
                await asyncio.gather(*acks)
            await self.store(written)
            for record in batch:
                await ack(record)
        except Exception as exc:
            # Stop the worker even when no further batch arrives to notice: nothing from
            # here on was acknowledged, so a restarted worker handles it all again.
            await self.streams.app.crash(exc)
            raise

    async def producer(self):
        # Asked once: Faust's `maybe_start_producer` yields to the loop three times per call,
        # and every yield lets the sender ship what is buffered so far, a record or two.
        if self._producer is None:
            self._producer = await self.streams.app.maybe_start_producer()
        return self._producer

    async def send(self, topic: str, key: bytes, value: bytes,
                   partition: int | None = None, headers: list | None = None) -> asyncio.Future:
        """Schedule a record; the returned future resolves once the broker acknowledged it."""
        producer = await self.producer()
        return await producer.send(topic, key, value, partition, None, headers)

    async def dead_letter(self, message: Message, reason: str) -> asyncio.Future:
        return await send_dead_letter(self.streams, message, reason)

    async def store(self, written: dict[str, tuple[int, Any]]) -> None:
        """What `table[key] = value` does, as the decider does it: the changelog partition
        is the input record's (Faust reads it from a "current event", which a batch has
        not), and this returns once the broker holds every entry, so the input is
        acknowledged only after its state is stored."""
        if not written:
            return
        table = self.table
        producer = await self.producer()
        changelog = table.changelog_topic
        topic, encode = changelog.get_topic_name(), codecs.get_codec(changelog.value_serializer).dumps
        stored = []
        for key, (partition, value) in written.items():
            table.data[key] = value
            if self.pending.get(key) is value:
                del self.pending[key]
            future = await producer.send(topic, key.encode(), encode(value), partition, None, None)
            future.add_done_callback(self._persisted)
            stored.append(future)
        await asyncio.gather(*stored)

    def _persisted(self, stored: asyncio.Future) -> None:
        record_persisted(self.streams, self.table, stored)


class IncidentWatch(Shell):
    """Events to incident notices for the groups that must hear of them."""

    def __init__(self, streams: Streams, topology: IntakeTopology) -> None:
        super().__init__(streams, topology)
        self.table = topology.watched

    async def handle(self, batch: Sequence[EventT]) -> tuple[list[asyncio.Future], dict]:
        intake = self.settings.intake
        working: dict[str, tuple[int, Watched]] = {}
        acks = []
        for record in batch:
            message = record.message
            try:
                event = json.loads(message.value)
                key = str(event["incident_id"])
                partition, before = working.get(key) or (message.partition, self.entry(key))
                after, notice = watch(before, event, intake)
            except (ValueError, TypeError, KeyError, ValidationError) as err:
                # The projector dead-letters events nobody can read; here they just don't matter.
                log.debug("incident-watch: skipping %s/%s@%s: %r",
                          message.topic, message.partition, message.offset, err)
                continue
            if after is not None and after is not before:
                working[key] = (partition, after)
            if notice is not None:
                acks.append(await self.send(self.notices_topic, notice.group_key.encode(),
                                            notice.model_dump_json().encode()))
        return acks, working


class IntakeDesk(Shell):
    """Alerts and notices to commands, one group at a time; poison to the DLQ."""

    def __init__(self, streams: Streams, topology: IntakeTopology) -> None:
        super().__init__(streams, topology)
        self.table = topology.groups
        self.intake = Intake(streams.settings.intake)
        self.alerts_topic = streams.settings.topics.name("alerts")
        self.commands_topic = streams.settings.topics.name("commands")
        self.partitions = streams.settings.topics.partitions

    def home(self, key: bytes) -> int:
        """The partition a record keyed `key` lands in (the producers' default partitioner),
        where the group of that key keeps its state."""
        return (murmur2(key) & 0x7FFFFFFF) % self.partitions

    async def handle(self, batch: Sequence[EventT]) -> tuple[list[asyncio.Future], dict]:
        working: dict[str, tuple[int, Kept]] = {}
        acks = []
        for record in batch:
            message = record.message
            from_alerts = message.topic == self.alerts_topic
            try:
                notice = self.alert(message) if from_alerts else self.notice(message)
            except Poison as poison:
                acks.append(await self.dead_letter(message, poison.reason))
                continue
            key = notice.group_key
            if from_alerts and (message.key != key.encode() or message.partition != self.home(message.key)):
                # Not in its group's partition: forward it there through the notices topic.
                acks.append(await self.send(self.notices_topic, key.encode(), notice.model_dump_json().encode()))
                continue
            partition, kept = working.get(key) or (message.partition, self.entry(key) or Kept())
            offset_field = "alerts_offset" if from_alerts else "notices_offset"
            if message.offset <= getattr(kept, offset_field):
                continue  # redelivered after a restart; the group already holds its effect
            try:
                handled = self.intake.handle(notice, kept.group)
            except Exception as err:  # a bug must not stop the partition behind one notice
                log.exception("intake: cannot react to %s/%s@%s",
                              message.topic, message.partition, message.offset)
                acks.append(await self.dead_letter(message, f"could not be taken in: {err!r}"))
                continue
            if handled.lost:
                log.warning("intake: group %s: %d alert(s) refused by resolved incident %s are "
                            "no longer remembered; they come back when their producer re-sends them",
                            key, len(handled.lost), kept.group.incident_id)
            for command in handled.commands:
                acks.append(await self.send(self.commands_topic, str(command.incident_id).encode(),
                                            command.model_dump_json(by_alias=True).encode()))
            working[key] = (partition, replace(kept, group=handled.group, **{offset_field: message.offset}))
        return acks, working

    def alert(self, message: Message) -> AlertNotice:
        """The notice for an alert record, or `Poison` saying why there is none."""
        intake = self.settings.intake
        alert = parse_alert(message.value, self.settings.kafka.max_input_bytes)
        problem = refusal(alert, intake)
        if problem is not None:
            raise Poison(f"not a valid alert: {problem[0]}: {problem[1]}")
        return alert_notice(alert, received_at(message), intake)

    @staticmethod
    def notice(message: Message) -> AlertNotice | IncidentNotice:
        # Notices come from this worker only, made of alerts no larger than max_input_bytes.
        try:
            return NOTICE_ADAPTER.validate_json(message.value or b"")
        except ValidationError as err:
            raise Poison(f"not a valid intake notice: {err}") from None


def received_at(message: Message) -> datetime:
    # The record's own timestamp: the same on every redelivery, unlike the clock.
    if message.timestamp and message.timestamp > 0:
        return datetime.fromtimestamp(message.timestamp, UTC)
    return datetime.now(UTC)


@dataclass(frozen=True)
class IntakeAgents:
    topology: IntakeTopology
    desk: IntakeDesk
    watch: IncidentWatch


def install_intake(streams: Streams, *, batch_max: int = BATCH_MAX,
                   batch_wait_s: float = BATCH_WAIT_S, in_flight: int = IN_FLIGHT) -> IntakeAgents:
    """Attach the intake agents to `streams.app` and return their shells."""
    topology = declare(streams)
    agents = IntakeAgents(topology, IntakeDesk(streams, topology), IncidentWatch(streams, topology))

    def agent(name: str, channel: TopicT, shell: Shell) -> None:
        # An error stops the whole worker rather than restarting the agent: the failed batch
        # stays unacknowledged and is redelivered after a restart, as for the decider.
        @streams.app.agent(channel, name=name, supervisor_strategy=mode.CrashingSupervisor)
        async def run(stream: StreamT) -> None:
            unfinished: deque[asyncio.Future] = deque()
            try:
                async for batch in stream.noack_take(batch_max, within=batch_wait_s):
                    unfinished.append(await shell.apply(batch, stream.ack))
                    while unfinished and (unfinished[0].done() or len(unfinished) > in_flight):
                        await unfinished.popleft()
            finally:
                # Never leave a batch half-finished behind a stopping or rebalancing agent.
                await asyncio.gather(*unfinished, return_exceptions=True)

    agent("intake", topology.alerts_and_notices, agents.desk)
    agent("incident-watch", topology.events, agents.watch)
    return agents
