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
- `exactly_once` would have Faust's Kafka transactions commit events, table changelog
  and offsets together (Apache Kafka only; Tansu has no transactions). It is refused
  for now: with it, a cleanly restarted worker intermittently recovered incidents
  without their last changelog writes (tests/integration/test_worker.py, restart test).

Throughput: batches are pipelined. While the events of one batch await their acks, the
next batch is decided on the states the earlier one left; batches still finish strictly
in order (acks, table, outcomes, acknowledgement).
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime

import faust
import mode
from faust.serializers import codecs
from faust.types import EventT, StreamT
from faust.types.tuples import Message
from pydantic import ValidationError

from contracts.commands import COMMAND_ADAPTER, CommandBase
from contracts.events import EventEnvelope
from contracts.outcomes import CommandOutcome
from streams.app import Streams, create_app, record_persisted, send_dead_letter
from streams.correlation_agents import install_correlation
from streams.decider import Rejected
from streams.incident import Applied, State
from streams.incident_log import execute
from streams.intake_agents import install_intake
from streams.log_watch import install_log_watch
from warroom.event_loop import new_event_loop
from warroom.settings import Settings, SettingsError, load_settings

log = logging.getLogger(__name__)

BATCH_MAX = 1000
BATCH_WAIT_S = 0.002  # bounds the latency a lone command pays for batching
IN_FLIGHT = 4  # batches decided and sent but not yet acked by the broker

Acknowledge = Callable[[EventT], Awaitable[bool]]


class Poison(Exception):
    """A message that is not a command we can decide; `reason` goes to the DLQ."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def parse(key: bytes | None, value: bytes | None, max_bytes: int | None = None) -> CommandBase:
    """The command in a raw commands-topic record, or `Poison` saying why there is none.

    A record over `max_bytes` is refused unread: its events could not be appended."""
    if value is None:
        raise Poison("empty message")
    if max_bytes is not None and len(value) > max_bytes:
        raise Poison(f"too large: {len(value)} bytes, a command may take {max_bytes} "
                     f"(kafka.max_message_bytes less room for the events it appends)")
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
    """Applies batches of command records; all I/O of the decider happens here.

    Batches are pipelined: while the events of one batch await the broker's acks, the
    next batch is decided on the states the earlier one left (`pending`). Each batch is
    finished strictly after the one before it: acks, then table, then outcomes, then
    the commands are acknowledged for commit.
    """

    def __init__(self, streams: Streams) -> None:
        self.streams = streams
        self.table = streams.incidents
        names = streams.settings.topics
        self.events_topic = names.name("events")
        self.outcomes_topic = names.name("outcomes")
        # Records go straight to the app's producer, encoded by the topics' codec: the
        # per-message bookkeeping of `Topic.send` costs more than deciding the command.
        self.encode_event = codecs.get_codec(streams.events.value_serializer).dumps
        self.encode_outcome = codecs.get_codec(streams.outcomes.value_serializer).dumps
        changelog = self.table.changelog_topic
        self.changelog_topic = changelog.get_topic_name()
        self.encode_state = codecs.get_codec(changelog.value_serializer).dumps
        self.pending: dict[str, Applied] = {}  # decided and sent, not yet in the table
        self.read_through: dict[int, int] = {}  # commands partition -> next offset read
        self.max_bytes = streams.settings.kafka.max_input_bytes
        self._last: asyncio.Future | None = None

    async def apply(self, batch: Sequence[EventT], ack: Acknowledge) -> asyncio.Future:
        """Decide `batch` in order and send its events; return the future that finishes it."""
        working: dict[str, tuple[int, Applied]] = {}
        appended: list[tuple[int, EventEnvelope]] = []
        answers: list[tuple[int, CommandOutcome]] = []
        letters: list[asyncio.Future] = []
        for record in batch:
            message = record.message
            self.read_through[message.partition] = message.offset + 1
            try:
                command = parse(message.key, message.value, self.max_bytes)
            except Poison as poison:
                letters.append(await self._dead_letter(message, poison.reason))
                continue
            key = str(command.incident_id)
            partition, applied = working.get(key) or (message.partition, self._applied(key))
            if message.offset <= applied.through_offset:
                continue  # redelivered after a restart; the state already holds its effect
            before = applied.state
            try:
                decision = execute(command, before, recorded_at(message, command))
            except Rejected as rejection:
                answers.append((partition, outcome(command, before, before, 0, rejection)))
                working[key] = (partition, Applied(state=before, through_offset=message.offset))
                continue
            except Exception as err:  # a bug must not stop the partition behind one command
                log.exception("cannot decide command %s", command.command_id)
                letters.append(await self._dead_letter(message, f"could not be decided: {err!r}"))
                continue
            appended.extend((partition, event) for event in decision.events)
            answers.append((partition, outcome(command, before, decision.state,
                                               len(decision.events))))
            working[key] = (partition, Applied(state=decision.state,
                                               through_offset=message.offset))
        for key, (_, applied) in working.items():
            self.pending[key] = applied
        producer = await self.streams.app.maybe_start_producer()
        acks = [await producer.send(self.events_topic, str(event.incident_id).encode(),
                                    self.encode_event(event), partition, None, None)
                for partition, event in appended]
        self._last = asyncio.ensure_future(
            self._finish(self._last, acks + letters, working, answers, batch, ack))
        return self._last

    def _applied(self, key: str) -> Applied:
        return self.pending.get(key) or self.table.get(key) or Applied()

    async def _finish(self, previous: asyncio.Future | None, sent: list, working: dict,
                      answers: list, batch: Sequence[EventT], ack: Acknowledge) -> None:
        try:
            if previous is not None:
                await previous  # a failure of the batch before fails this one too
            await self._store_and_answer(sent, working, answers, batch, ack)
        except Exception as exc:
            # Stop the worker even when no further batch arrives to notice: nothing from
            # here on was acknowledged, so a restarted worker decides it all again.
            await self.streams.app.crash(exc)
            raise

    async def _store_and_answer(self, sent: list, working: dict, answers: list,
                                batch: Sequence[EventT], ack: Acknowledge) -> None:
        if sent:  # events and dead letters: in the log before any state refers to them
            await asyncio.gather(*sent)
        producer = await self.streams.app.maybe_start_producer()
        kept = [await self._remember(producer, partition, key, applied)
                for key, (partition, applied) in working.items()]
        for partition, answer in answers:
            await producer.send(self.outcomes_topic, str(answer.incident_id).encode(),
                                self.encode_outcome(answer), partition, None, None)
        if kept:
            # A state lost on its way to the changelog would be silently stale after a
            # restart, so its commands are acknowledged only once it is stored.
            await asyncio.gather(*kept)
        for record in batch:
            await ack(record)

    async def _remember(self, producer, partition: int, key: str,
                        applied: Applied) -> asyncio.Future:
        """What `table[key] = applied` does, with two differences: the changelog partition
        is the command's (Faust reads it from a "current event", which a batch has not),
        and the write skips Faust's one-at-a-time changelog buffer."""
        self.table.data[key] = applied
        if self.pending.get(key) is applied:
            del self.pending[key]
        stored = await producer.send(self.changelog_topic, key.encode(),
                                     self.encode_state(applied), partition, None, None)
        stored.add_done_callback(self._persisted)
        return stored

    def _persisted(self, stored: asyncio.Future) -> None:
        record_persisted(self.streams, self.table, stored)

    async def _dead_letter(self, message: Message, reason: str) -> asyncio.Future:
        return await send_dead_letter(self.streams, message, reason)


def install_decider(streams: Streams, *, batch_max: int = BATCH_MAX,
                    batch_wait_s: float = BATCH_WAIT_S, in_flight: int = IN_FLIGHT) -> DeciderShell:
    """Attach the decider agent to `streams.app` and return its shell."""
    if streams.settings.worker.processing_guarantee != "at_least_once":
        raise SettingsError(
            "setting 'worker.processing_guarantee': the decider supports only at_least_once "
            "for now; under exactly_once a restarted worker was seen to recover incidents "
            "without their last transactional changelog writes (set in "
            "WARROOM_WORKER__PROCESSING_GUARANTEE or the config file)")
    shell = DeciderShell(streams)

    # An error stops the whole worker rather than restarting the agent: the failed batch
    # and every later one stay unacknowledged, so they are redelivered after a restart.
    @streams.app.agent(streams.commands, name="decider",
                       supervisor_strategy=mode.CrashingSupervisor)
    async def decider(stream: StreamT) -> None:
        unfinished: deque[asyncio.Future] = deque()
        try:
            async for batch in stream.noack_take(batch_max, within=batch_wait_s):
                unfinished.append(await shell.apply(batch, stream.ack))
                while unfinished and (unfinished[0].done() or len(unfinished) > in_flight):
                    await unfinished.popleft()
        finally:
            # Never leave a batch half-finished behind a stopping or rebalancing agent.
            await asyncio.gather(*unfinished, return_exceptions=True)

    return shell


def run(settings: Settings) -> None:
    """Run the stream worker until SIGTERM or SIGINT; blocks, then exits the process.

    The topics must exist (`warroom.topics.ensure_topics`).
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
    from warroom.topics import ensure_topics

    try:
        settings = load_settings()
        asyncio.run(ensure_topics(settings))
        run(settings)
    except SettingsError as err:
        raise SystemExit(f"streams.worker: {err}") from None


if __name__ == "__main__":
    main()
