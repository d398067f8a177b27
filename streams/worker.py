"""The decider agent: commands in, events and outcomes out, state in the `incidents` table.

The agent is the partition shell (`streams.partition`) around a step that runs
`streams.incident_log.execute`. For each batch, in order: decode every command (what
cannot be decoded goes to the DLQ with its reason), decide it on the incident's state,
send the events keyed by incident id and wait for the broker's acks, then store the new
states in the table, then send one `CommandOutcome` per command (rejections too). Only
after that are the commands acknowledged, so their offsets can be committed.

Delivery is at least once (works on Tansu): a crash may redeliver commands whose events
were already appended. Events are deterministic (ids from the command id, `recorded_at`
from the command's Kafka timestamp), so a redelivered command decided on the same state
appends byte-identical events, and readers drop an exact `(incident_id, version)` repeat.
The table stores, with each state, the offset of the last command it reflects; a
redelivered command at or below it is skipped, so it is never decided again on a newer
state. Any unexpected error stops the worker without acknowledging the batch (the process
supervisor restarts it). There is no `exactly_once`: Tansu has no Kafka transactions, and
on Apache Kafka a restarted worker under them was seen to recover incidents without their
last changelog writes; `worker.processing_guarantee` is refused at start.

Throughput: batches are pipelined by the shell. While the events of one batch await
their acks, the next batch is decided on the states the earlier one left; batches still
finish strictly in order (acks, table, outcomes, acknowledgement).
"""

from __future__ import annotations

import logging
from datetime import datetime

import faust
from faust.serializers import codecs
from faust.types.tuples import Message
from pydantic import ValidationError

from contracts.commands import COMMAND_ADAPTER, CommandBase
from contracts.outcomes import CommandOutcome
from foundation.event_loop import new_event_loop
from foundation.settings import Settings
from foundation.topics import main_with_topics
from streams.app import Streams, create_app
from streams.correlation_agents import install_correlation
from streams.decider import Rejected
from streams.applied import Applied
from streams.incident import Incident
from streams.incident_log import State, execute
from streams.intake_agents import install_intake
from streams.log_watch import install_log_watch
from streams.silence import RULE_EVENTS, rule_of
from streams.partition import (
    BATCH_MAX,
    IN_FLIGHT,
    Poison,
    Reaction,
    Shell,
    install,
    invalid,
    record_time,
    too_large,
)

log = logging.getLogger(__name__)

BATCH_WAIT_S = 0.002  # bounds the latency a lone command pays for batching

__all__ = ["Poison", "install_decider", "outcome", "parse", "recorded_at", "run"]


def parse(key: bytes | None, value: bytes | None, max_bytes: int | None = None) -> CommandBase:
    """The command in a raw commands-topic record, or `Poison` saying why there is none.

    A record over `max_bytes` is refused unread: its events could not be appended."""
    if value is None:
        raise Poison("empty message")
    if refused := too_large(value, max_bytes, "a command",
                            "kafka.max_message_bytes less room for the events it appends"):
        raise refused
    try:
        command: CommandBase = COMMAND_ADAPTER.validate_json(value)
    except ValidationError as err:
        raise invalid(err, "command") from None
    if key != str(command.incident_id).encode():
        # The table and the event stream of an incident live in the partition of its key.
        raise Poison(f"command key {key!r} is not its incident_id {command.incident_id}")
    return command


def outcome(command: CommandBase, before: State, after: State, events: int,
            rejection: Rejected | None = None) -> CommandOutcome:
    """The answer for whoever sent `command`."""
    state = after if rejection is None else before
    return CommandOutcome(
        command_id=command.command_id,
        incident_id=command.incident_id,
        accepted=rejection is None,
        code=rejection.code if rejection else None,
        detail=rejection.detail if rejection else None,
        field=rejection.field if rejection else None,
        events=events,
        version=state.version if state is not None else 0,
        status=state.status if isinstance(state, Incident) else None,
    )


def recorded_at(message: Message, command: CommandBase) -> datetime:
    return record_time(message, lambda: command.issued_at)


class Decider:
    """The decider as a step of the partition shell (`streams.partition`): a command on
    its incident's `Applied` state in, the events and the outcome to send out."""

    empty = Applied()
    failure = "could not be decided"

    def __init__(self, streams: Streams) -> None:
        self.table = streams.incidents
        names = streams.settings.topics
        self.events_topic = names.name("events")
        self.outcomes_topic = names.name("outcomes")
        self.silences_topic = names.name("silences")
        # Records go straight to the producer, encoded by the topics' codec: the
        # per-message bookkeeping of `Topic.send` costs more than deciding the command.
        self.encode_event = codecs.get_codec(streams.events.value_serializer).dumps
        self.encode_outcome = codecs.get_codec(streams.outcomes.value_serializer).dumps
        self.max_bytes = streams.settings.kafka.max_input_bytes

    def read(self, message: Message) -> tuple[str, CommandBase]:
        command = parse(message.key, message.value, self.max_bytes)
        return str(command.incident_id), command

    @staticmethod
    def through(applied: Applied, message: Message) -> int:
        return applied.through_offset

    def react(self, command: CommandBase, applied: Applied, message: Message) -> Reaction:
        before, partition, key = applied.state, message.partition, message.key
        try:
            decision = execute(command, before, recorded_at(message, command))
        except Rejected as rejection:
            answer = outcome(command, before, before, 0, rejection)
            return Reaction(Applied(state=before, through_offset=message.offset),
                            answers=((self.outcomes_topic, key, self.encode_outcome(answer), partition),))
        answer = outcome(command, before, decision.state, len(decision.events))
        encode, topic = self.encode_event, self.events_topic
        sends = [(topic, key, encode(event), partition) for event in decision.events]
        if any(event.type in RULE_EVENTS for event in decision.events):
            # The intake reads silences from their own topic: the rule goes out with the
            # events that changed it, so the log never holds a silence the intake cannot see.
            rule = rule_of(command.incident_id, decision.state)  # type: ignore[arg-type]
            if rule is not None:
                sends.append((self.silences_topic, key, rule.model_dump_json().encode(), 0))
        return Reaction(Applied(state=decision.state, through_offset=message.offset),
                        sends=sends,
                        answers=((self.outcomes_topic, key, self.encode_outcome(answer), partition),))


def install_decider(streams: Streams, *, batch_max: int = BATCH_MAX,
                    batch_wait_s: float = BATCH_WAIT_S, in_flight: int = IN_FLIGHT) -> Shell:
    """Attach the decider agent to `streams.app` and return its shell."""
    return install(streams, streams.commands, "decider", Decider(streams),
                   batch_max=batch_max, batch_wait_s=batch_wait_s, in_flight=in_flight)


def run(settings: Settings) -> None:
    """Run the stream worker until SIGTERM or SIGINT; blocks, then exits the process.

    The topics must exist (`foundation.topics.ensure_topics`).
    """
    loop = new_event_loop()
    (settings.data_dir / "faust").mkdir(parents=True, exist_ok=True)
    streams = create_app(settings)
    decider = install_decider(streams)
    install_log_watch(streams, lambda: decider.read_through)
    install_intake(streams)
    install_correlation(streams)
    worker = faust.Worker(streams.app, loop=loop, loglevel=settings.log_level.upper())
    # Faust's terminal spinner lowers the root logger to DEBUG so every record spins it;
    # that builds a log record per produced message. A service needs no spinner.
    worker.spinner = None
    worker.execute_from_commandline()


def main() -> None:
    """`python -m streams.worker`: settings from the environment, topics ensured, run."""
    main_with_topics("streams.worker", run)


if __name__ == "__main__":
    main()
