"""The decider agent: commands in, events and outcomes out, state in the `incidents` table.

The agent is a shell around `streams.incident_log.execute`. For each batch, in order:
decode every command (what cannot be decoded goes to the DLQ with its reason), decide
it on the incident's state, send the events keyed by incident id and wait for the
broker's acks, then store the new states in the table, then send one `CommandOutcome`
per command (rejections too). Only after that are the commands acknowledged, so their
offsets can be committed.

Delivery: `worker.processing_guarantee` chooses between
- `at_least_once` (default; works on Tansu): a crash may redeliver commands whose
  events were already appended. Events are deterministic (ids from the command id,
  `recorded_at` from the command's Kafka timestamp), so a redelivered command decided
  on the same state appends byte-identical events, and readers drop an exact
  `(incident_id, version)` repeat. The table stores, with each state, the offset of
  the last command it reflects; a redelivered command at or below it is skipped, so it
  is never decided again on a newer state. Any unexpected error stops the worker
  without acknowledging the batch (the process supervisor restarts it).
- `exactly_once`: Faust's Kafka transactions commit events, outcomes, table changelog
  and offsets atomically. Needs Apache Kafka (Tansu has no transactions).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Sequence
from datetime import UTC, datetime

import faust
import mode
from faust.types import EventT, StreamT
from faust.types.tuples import Message
from pydantic import ValidationError

from contracts.commands import COMMAND_ADAPTER, CommandBase
from contracts.events import EventEnvelope
from contracts.outcomes import CommandOutcome
from streams.app import Streams, create_app
from streams.dead_letters import dead_letter
from streams.decider import Rejected
from streams.incident import Applied, State
from streams.incident_log import execute
from warroom.settings import Settings, load_settings

log = logging.getLogger(__name__)

BATCH_MAX = 1000
BATCH_WAIT_S = 0.002  # bounds the latency a lone command pays for batching


class Poison(Exception):
    """A message that is not a command we can decide; `reason` goes to the DLQ."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def parse(key: bytes | None, value: bytes | None) -> CommandBase:
    """The command in a raw commands-topic record, or `Poison` saying why there is none."""
    if value is None:
        raise Poison("empty message")
    try:
        command: CommandBase = COMMAND_ADAPTER.validate_json(value)
    except ValidationError as err:
        problems = err.errors(include_url=False)
        if any(p["type"] == "json_invalid" for p in problems):
            raise Poison(f"not valid JSON: {problems[0]['msg']}") from None
        detail = "; ".join(
            f"{'.'.join(map(str, p['loc'])) or 'value'}: {p['msg']}" for p in problems[:5]
        )
        raise Poison(f"not a valid command: {detail}") from None
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
        status=state.status if state is not None else None,
    )


def recorded_at(message: Message, command: CommandBase) -> datetime:
    # The record's own timestamp: the same on every redelivery, unlike the clock.
    if message.timestamp and message.timestamp > 0:
        return datetime.fromtimestamp(message.timestamp, UTC)
    return command.issued_at


class DeciderShell:
    """Applies batches of command records; all I/O of the decider happens here."""

    def __init__(self, streams: Streams) -> None:
        self.streams = streams
        self.table = streams.incidents

    async def apply(self, batch: Sequence[EventT]) -> None:
        """Decide `batch` in order; return once events are acked and states stored."""
        working: dict[str, tuple[int, Applied]] = {}
        appended: list[tuple[int, EventEnvelope]] = []
        answers: list[tuple[int, CommandOutcome]] = []
        for record in batch:
            message = record.message
            try:
                command = parse(message.key, message.value)
            except Poison as poison:
                await self._dead_letter(message, poison.reason)
                continue
            key = str(command.incident_id)
            partition, applied = working.get(key) or (
                message.partition, self.table.get(key) or Applied())
            if message.offset <= applied.through_offset:
                continue  # redelivered after a restart; the state already holds its effect
            before = applied.state
            try:
                decision = execute(command, before, recorded_at(message, command))
            except Rejected as rejection:
                answers.append((partition, outcome(command, before, before, 0, rejection)))
                working[key] = (partition, Applied(state=before, through_offset=message.offset))
                continue
            appended.extend((partition, event) for event in decision.events)
            answers.append((partition, outcome(command, before, decision.state,
                                               len(decision.events))))
            working[key] = (partition, Applied(state=decision.state,
                                               through_offset=message.offset))
        await self._append(appended)
        for key, (partition, applied) in working.items():
            self._remember(partition, key, applied)
        for partition, answer in answers:
            await self.streams.outcomes.send(
                key=str(answer.incident_id).encode(), value=answer, partition=partition)

    async def _append(self, appended: list[tuple[int, EventEnvelope]]) -> None:
        acks: list[Awaitable] = []
        for partition, event in appended:
            acks.append(await self.streams.events.send(
                key=str(event.incident_id).encode(), value=event, partition=partition))
        if acks:
            await asyncio.gather(*acks)

    def _remember(self, partition: int, key: str, applied: Applied) -> None:
        # What `table[key] = applied` does, but with the changelog partition named: the
        # command's, which Faust cannot infer inside a batch (it reads the "current event").
        self.table.send_changelog(partition, key, applied)
        self.table.data[key] = applied

    async def _dead_letter(self, message: Message, reason: str) -> None:
        log.warning("dead letter from %s/%s@%s: %s",
                    message.topic, message.partition, message.offset, reason)
        key, value, headers = dead_letter(
            message.value, message.key, message.topic, message.partition, message.offset, reason)
        await self.streams.dlq.send(key=key, value=value, headers=headers,
                                    partition=message.partition)


def install_decider(streams: Streams, *, batch_max: int = BATCH_MAX,
                    batch_wait_s: float = BATCH_WAIT_S) -> DeciderShell:
    """Attach the decider agent to `streams.app` and return its shell."""
    shell = DeciderShell(streams)

    # An error stops the whole worker rather than restarting the agent: the batch was
    # not acknowledged, so it is redelivered to whoever runs next.
    @streams.app.agent(streams.commands, name="decider",
                       supervisor_strategy=mode.CrashingSupervisor)
    async def decider(stream: StreamT) -> None:
        async for batch in stream.noack_take(batch_max, within=batch_wait_s):
            await shell.apply(batch)
            for record in batch:
                await stream.ack(record)

    return shell


def run(settings: Settings) -> None:
    """Run the stream worker until SIGTERM or SIGINT; blocks, then exits the process.

    The topics must exist (`warroom.topics.ensure_topics`).
    """
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    (settings.data_dir / "faust").mkdir(parents=True, exist_ok=True)
    streams = create_app(settings)
    install_decider(streams)
    worker = faust.Worker(streams.app, loop=loop, loglevel=settings.log_level.upper())
    worker.execute_from_commandline()


def main() -> None:
    """`python -m streams.worker`: settings from the environment, topics ensured, run."""
    from warroom.topics import ensure_topics

    settings = load_settings()
    asyncio.run(ensure_topics(settings))
    run(settings)


if __name__ == "__main__":
    main()
