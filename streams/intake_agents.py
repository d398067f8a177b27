"""The intake agents: alerts in, commands out, one table entry per group (SPEC §5).

Two steps of the partition shell (`streams.partition`) around `streams.intake`:

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

The shell sends records straight to the app's producer and takes input in pipelined
batches, as for the decider: throughput is the point (SPEC §12: 5,000 alerts/s), and
every hop through a Faust stream costs more than the intake's own work.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any
from uuid import uuid5

import mode
from aiokafka.partitioner import murmur2
from faust.serializers import codecs
from faust.types import TableT, TopicT
from faust.types.tuples import Message
from pydantic import ValidationError

from contracts.alerts import Alert
from contracts.commands import RecordSilencedAlert
from streams.alert_reading import NOTICE_ADAPTER, AlertNotice, IncidentNotice, alert_notice, refusal
from streams.app import Streams, declare_table
from streams.codec import PydanticCodec
from streams.intake import NAMESPACE, Group, Intake, Watched, producer_of, watch
from streams.silence_book import SilenceBook, Silencer
from streams.partition import (
    BATCH_MAX,
    IN_FLIGHT,
    NOTHING,
    Poison,
    Reaction,
    Shell,
    install,
    invalid,
    record_time,
    too_large,
)

log = logging.getLogger(__name__)

BATCH_WAIT_S = 0.01  # bounds the latency a lone alert pays for batching
CATCH_UP_S = 5.0  # the longest a batch waits for the silences to be read up to date

GROUP_STATE = "warroom.intake-group"
WATCHED_STATE = "warroom.intake-watched"


@dataclass(frozen=True, slots=True)
class Kept:
    """What the `intake-groups` table keeps per group: the group, and the offsets of the
    last alert and notice records it reflects (a redelivered record at or below is skipped)."""

    group: Group = Group()
    alerts_offset: int = -1
    notices_offset: int = -1


def parse_alert(value: bytes | None, max_bytes: int | None = None) -> Alert:
    """The alert in a raw alerts-topic record, or `Poison` saying why there is none.

    A record over `max_bytes` is refused unread: the commands made of it could not be sent."""
    if value is None:
        raise Poison("empty message")
    if refused := too_large(value, max_bytes, "an alert",
                            "kafka.max_message_bytes less room for the commands made of it"):
        raise refused
    try:
        return Alert.model_validate_json(value)
    except ValidationError as err:
        raise invalid(err, "alert") from None


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

    notices = f"{app.conf.id}-intake-notices"
    return IntakeTopology(
        # Internal, so that Faust creates the notices topic (the alerts topic exists already).
        alerts_and_notices=raw(names.name("alerts"), notices, internal=True),
        events=raw(names.name("events")),
        notices=notices,
        groups=declare_table(app, "intake-groups", GROUP_STATE, n),
        watched=declare_table(app, "intake-watched", WATCHED_STATE, n),
    )


class WatchStep:
    """Events to incident notices for the groups that must hear of them (`incident-watch`)."""

    empty = None
    failure = "could not be watched"

    def __init__(self, streams: Streams, topology: IntakeTopology) -> None:
        self.table = topology.watched
        self.settings = streams.settings.intake
        self.notices_topic = topology.notices

    def read(self, message: Message) -> tuple[str, Any] | Reaction:
        try:
            event = json.loads(message.value)
            return str(event["incident_id"]), event
        except (ValueError, TypeError, KeyError) as err:
            return self._skip(message, err)

    @staticmethod
    def through(watched: Watched | None, message: Message) -> int:
        return -1  # a notice carries the event version it reports: a repeat is harmless

    def react(self, event: Any, before: Watched | None, message: Message) -> Reaction:
        try:
            after, notice = watch(before, event, self.settings)
        except (ValueError, TypeError, KeyError, ValidationError) as err:
            return self._skip(message, err)
        sends = () if notice is None else (
            (self.notices_topic, notice.group_key.encode(), notice.model_dump_json().encode(), None),)
        return Reaction(after if after is not before else None, sends)

    @staticmethod
    def _skip(message: Message, err: Exception) -> Reaction:
        # The projector dead-letters events nobody can read; here they just don't matter.
        log.debug("incident-watch: skipping %s/%s@%s: %r",
                  message.topic, message.partition, message.offset, err)
        return NOTHING


class IntakeStep:
    """Alerts and notices to commands, one group at a time (`intake`)."""

    empty = Kept()
    failure = "could not be taken in"

    def __init__(self, streams: Streams, topology: IntakeTopology) -> None:
        self.table = topology.groups
        self.settings = streams.settings
        self.intake = Intake(streams.settings.intake)
        self.notices_topic = topology.notices
        self.alerts_topic = streams.settings.topics.name("alerts")
        self.commands_topic = streams.settings.topics.name("commands")
        self.partitions = streams.settings.topics.partitions
        self.silences = SilenceBook(streams.settings)
        # Bounded: a silences partition that cannot be read must not hold alerts up for long.
        self.catch_up_s = min(CATCH_UP_S, streams.settings.kafka.request_timeout_s)

    async def prepare(self) -> None:
        # Every silence answered before this batch's alerts were sent is known before they are read.
        await self.silences.catch_up(self.catch_up_s)

    def home(self, key: bytes) -> int:
        """The partition a record keyed `key` lands in (the producers' default partitioner),
        where the group of that key keeps its state."""
        return (murmur2(key) & 0x7FFFFFFF) % self.partitions

    def read(self, message: Message) -> tuple[str, AlertNotice | IncidentNotice] | Reaction:
        from_alerts = message.topic == self.alerts_topic
        notice = self.alert(message) if from_alerts else self.notice(message)
        key = notice.group_key
        if from_alerts and (message.key != key.encode() or message.partition != self.home(message.key)):
            # Not in its group's partition: forward it there through the notices topic.
            return Reaction(sends=((self.notices_topic, key.encode(), notice.model_dump_json().encode(), None),))
        return key, notice

    def through(self, kept: Kept, message: Message) -> int:
        return kept.alerts_offset if message.topic == self.alerts_topic else kept.notices_offset

    def react(self, notice: AlertNotice | IncidentNotice, kept: Kept, message: Message) -> Reaction:
        if isinstance(notice, AlertNotice) and notice.alert.status == "firing":
            silencer = self.silences.silencer(notice.alert.labels, notice.received_at)
            if silencer is not None:
                # Swallowed: no incident, no page; only the silence's stream records it.
                command = silenced(notice, silencer)
                return Reaction(sends=((self.commands_topic, str(command.incident_id).encode(),
                                        command.model_dump_json().encode(), None),))
        handled = self.intake.handle(notice, kept.group)
        if handled.lost:
            log.warning("intake: group %s: %d alert(s) refused by resolved incident %s are "
                        "no longer remembered; they come back when their producer re-sends them",
                        notice.group_key, len(handled.lost), kept.group.incident_id)
        offset = "alerts_offset" if message.topic == self.alerts_topic else "notices_offset"
        return Reaction(
            replace(kept, group=handled.group, **{offset: message.offset}),
            [(self.commands_topic, str(command.incident_id).encode(),
              command.model_dump_json(by_alias=True).encode(), None) for command in handled.commands])

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


def silenced(notice: AlertNotice, silencer: Silencer) -> RecordSilencedAlert:
    """The command recording that `silencer` swallowed the alert of `notice`; its id is the
    same for every re-sent copy of that alert, so the silence records it once."""
    alert = notice.alert
    return RecordSilencedAlert(
        command_id=uuid5(NAMESPACE, f"{silencer.stream}|silenced|{notice.fingerprint}|{alert.starts_at.isoformat()}"),
        incident_id=silencer.stream, actor=producer_of(alert), issued_at=notice.received_at,
        fingerprint=notice.fingerprint, alertname=alert.labels.get("alertname"), labels=alert.labels,
        starts_at=alert.starts_at, window=silencer.window)


def received_at(message: Message) -> datetime:
    return record_time(message, lambda: datetime.now(UTC))


@dataclass(frozen=True)
class IntakeAgents:
    topology: IntakeTopology
    desk: Shell
    watch: Shell


def install_intake(streams: Streams, *, batch_max: int = BATCH_MAX,
                   batch_wait_s: float = BATCH_WAIT_S, in_flight: int = IN_FLIGHT) -> IntakeAgents:
    """Attach the intake agents to `streams.app` and return their shells."""
    topology = declare(streams)
    shell = {"batch_max": batch_max, "batch_wait_s": batch_wait_s, "in_flight": in_flight}
    desk = IntakeStep(streams, topology)

    @streams.app.service
    class ClosingSilences(mode.Service):
        async def on_stop(self) -> None:
            await desk.silences.stop()

    return IntakeAgents(
        topology,
        desk=install(streams, topology.alerts_and_notices, "intake", desk, **shell),
        watch=install(streams, topology.events, "incident-watch", WatchStep(streams, topology), **shell),
    )
