"""The intake agents: alerts in, commands out, one table entry per group (SPEC §5).

Three thin shells around `streams.intake`:

- `alert-router` reads the alerts topic as raw bytes. What is not JSON, not a valid
  `contracts.Alert`, or not storable goes to the DLQ with its bytes, origin and reason.
  Every other alert is forwarded as an `AlertNotice` to the notices topic, keyed by its
  group: alerts arrive keyed however their producer chose, and all of a group's notices
  must meet in one partition, where its table entry lives.
- `incident-watch` reads the events topic and tells a group when its incident opened,
  resolved or reopened (`IncidentNotice`, same topic, same key). It keeps what it needs
  per incident in the `intake-watched` table.
- `intake` reads the notices topic, reacts with the group from the `intake-groups`
  table, sends the commands keyed by incident id (an `OpenIncident` before the
  `AttachAlert` that follows it, one partition so in order), and stores the group.

Delivery is at least once, as for the decider: a batch's output is acknowledged by the
broker before its table entries are written and its input is acknowledged, so a crash
repeats work rather than losing it. Repeats are harmless: command ids are derived from
the group's state and the notice, so the decider recognises them; a redelivered notice
at or below the offset a group already reflects is skipped; an incident notice carries
the event version it reports, and the group keeps the last one it applied.

Records go straight to the app's producer, as the decider sends them: throughput is the
point (SPEC §12: 5,000 alerts/s), and each agent takes its input in batches.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import mode
from faust.serializers import codecs
from faust.types import EventT, StreamT, TableT, TopicT
from faust.types.tuples import Message
from pydantic import ValidationError

from contracts.alerts import Alert
from streams.app import Streams
from streams.codec import PydanticCodec
from streams.dead_letters import dead_letter
from streams.intake import NOTICE_ADAPTER, Group, Intake, Watched, alert_notice, refusal, watch

log = logging.getLogger(__name__)

BATCH_MAX = 1000
BATCH_WAIT_S = 0.01  # bounds the latency a lone alert pays for batching

GROUP_STATE = "warroom.intake-group"
WATCHED_STATE = "warroom.intake-watched"

Acknowledge = Callable[[EventT], Awaitable[bool]]


class Poison(Exception):
    """An alert record that cannot be taken in; `reason` goes to the DLQ."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def parse_alert(value: bytes | None) -> Alert:
    """The alert in a raw alerts-topic record, or `Poison` saying why there is none."""
    if value is None:
        raise Poison("empty message")
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

    alerts: TopicT  # raw bytes: an alert we cannot read still reaches the DLQ intact
    events: TopicT  # raw bytes, read without full validation: only three types matter
    notices: TopicT
    groups: TableT  # group key -> streams.intake.Group
    watched: TableT  # incident id -> streams.intake.Watched


def declare(streams: Streams) -> IntakeTopology:
    """Declare the intake's topics and tables on `streams.app`; makes no connection."""
    for name, model in ((GROUP_STATE, Group), (WATCHED_STATE, Watched)):
        if name not in codecs.codecs:
            codecs.register(name, PydanticCodec(model=model))
    app, names, n = streams.app, streams.settings.topics, streams.settings.topics.partitions

    def raw(name: str, **options: Any) -> TopicT:
        # key_type/value_type bytes: Faust shares a decoded message between channels of the
        # same topic only when these match, so our raw view never gets another's decoding.
        return app.topic(name, key_type=bytes, value_type=bytes, key_serializer="raw",
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

    return IntakeTopology(
        alerts=raw(names.name("alerts")),
        events=raw(names.name("events")),
        notices=raw(f"{app.conf.id}-intake-notices", internal=True),
        groups=table("intake-groups", GROUP_STATE),
        watched=table("intake-watched", WATCHED_STATE),
    )


class Shell:
    """What the three agents share: the producer, dead letters, table writes."""

    def __init__(self, streams: Streams, topology: IntakeTopology) -> None:
        self.streams = streams
        self.topology = topology
        self.settings = streams.settings
        self.dlq_topic = streams.settings.topics.name("dlq")
        self.notices_topic = topology.notices.get_topic_name()

    async def producer(self):
        return await self.streams.app.maybe_start_producer()

    async def send(self, topic: str, key: bytes, value: bytes,
                   partition: int | None = None, headers: list | None = None) -> asyncio.Future:
        """Schedule a record; the returned future resolves once the broker acknowledged it."""
        producer = await self.producer()
        return await producer.send(topic, key, value, partition, None, headers)

    async def dead_letter(self, message: Message, reason: str) -> asyncio.Future:
        log.warning("dead letter from %s/%s@%s: %s",
                    message.topic, message.partition, message.offset, reason)
        key, value, headers = dead_letter(
            message.value, message.key, message.topic, message.partition, message.offset, reason)
        return await self.send(self.dlq_topic, key, value, message.partition, headers)

    @staticmethod
    def store(table: TableT, written: dict[str, tuple[int, Any]]) -> None:
        # What `table[key] = value` does, with the changelog partition named: the input
        # record's, which Faust cannot infer inside a batch.
        for key, (partition, value) in written.items():
            table.send_changelog(partition, key, value)
            table.data[key] = value


class AlertRouter(Shell):
    """Alerts to notices keyed by group; poison to the DLQ."""

    async def apply(self, batch: Sequence[EventT], ack: Acknowledge) -> None:
        intake = self.settings.intake
        acks = []
        for record in batch:
            message = record.message
            try:
                alert = parse_alert(message.value)
                problem = refusal(alert, intake)
                if problem is not None:
                    raise Poison(f"not a valid alert: {problem[0]}: {problem[1]}")
            except Poison as poison:
                acks.append(await self.dead_letter(message, poison.reason))
                continue
            notice = alert_notice(alert, received_at(message), intake)
            acks.append(await self.send(self.notices_topic, notice.group_key.encode(),
                                        notice.model_dump_json().encode()))
        await asyncio.gather(*acks)
        for record in batch:
            await ack(record)


class IncidentWatch(Shell):
    """Events to incident notices for the groups that must hear of them."""

    async def apply(self, batch: Sequence[EventT], ack: Acknowledge) -> None:
        intake, table = self.settings.intake, self.topology.watched
        working: dict[str, tuple[int, Watched]] = {}
        acks = []
        for record in batch:
            message = record.message
            try:
                event = json.loads(message.value)
                key = str(event["incident_id"])
                partition, before = working.get(key) or (message.partition, table.get(key))
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
        await asyncio.gather(*acks)
        self.store(table, working)
        for record in batch:
            await ack(record)


class GroupDesk(Shell):
    """Notices to commands, one group at a time."""

    def __init__(self, streams: Streams, topology: IntakeTopology) -> None:
        super().__init__(streams, topology)
        self.intake = Intake(streams.settings.intake)
        self.commands_topic = streams.settings.topics.name("commands")

    async def apply(self, batch: Sequence[EventT], ack: Acknowledge) -> None:
        table = self.topology.groups
        working: dict[str, tuple[int, Group]] = {}
        acks = []
        for record in batch:
            message = record.message
            try:
                notice = NOTICE_ADAPTER.validate_json(message.value)
            except ValidationError as err:
                acks.append(await self.dead_letter(message, f"not a valid intake notice: {err}"))
                continue
            key = notice.group_key
            partition, group = working.get(key) or (message.partition, table.get(key) or Group())
            if message.offset <= group.through_offset:
                continue  # redelivered after a restart; the group already holds its effect
            try:
                handled = self.intake.handle(notice, group)
            except Exception as err:  # a bug must not stop the partition behind one notice
                log.exception("intake: cannot react to %s/%s@%s",
                              message.topic, message.partition, message.offset)
                acks.append(await self.dead_letter(message, f"could not be taken in: {err!r}"))
                continue
            if handled.lost:
                log.warning("intake: group %s: %d alert(s) refused by resolved incident %s are "
                            "no longer remembered; they come back when their producer re-sends them",
                            key, len(handled.lost), group.incident_id)
            for command in handled.commands:
                acks.append(await self.send(self.commands_topic, str(command.incident_id).encode(),
                                            command.model_dump_json(by_alias=True).encode()))
            working[key] = (partition, handled.group.model_copy(update={"through_offset": message.offset}))
        await asyncio.gather(*acks)
        self.store(table, working)
        for record in batch:
            await ack(record)


def received_at(message: Message) -> datetime:
    # The record's own timestamp: the same on every redelivery, unlike the clock.
    if message.timestamp and message.timestamp > 0:
        return datetime.fromtimestamp(message.timestamp, UTC)
    return datetime.now(UTC)


@dataclass(frozen=True)
class IntakeAgents:
    topology: IntakeTopology
    router: AlertRouter
    watch: IncidentWatch
    desk: GroupDesk


def install_intake(streams: Streams, *, batch_max: int = BATCH_MAX,
                   batch_wait_s: float = BATCH_WAIT_S) -> IntakeAgents:
    """Attach the three intake agents to `streams.app` and return their shells."""
    topology = declare(streams)
    agents = IntakeAgents(topology, AlertRouter(streams, topology),
                          IncidentWatch(streams, topology), GroupDesk(streams, topology))

    def agent(name: str, channel: TopicT, shell: Shell) -> None:
        # An error stops the whole worker rather than restarting the agent: the failed batch
        # stays unacknowledged and is redelivered after a restart, as for the decider.
        @streams.app.agent(channel, name=name, supervisor_strategy=mode.CrashingSupervisor)
        async def run(stream: StreamT) -> None:
            async for batch in stream.noack_take(batch_max, within=batch_wait_s):
                await shell.apply(batch, stream.ack)

    agent("alert-router", topology.alerts, agents.router)
    agent("incident-watch", topology.events, agents.watch)
    agent("intake", topology.notices, agents.desk)
    return agents
