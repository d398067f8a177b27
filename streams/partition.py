"""The partition shell: how every batch agent of the worker reads, sends and stores.

An agent is a `Step`, pure: it reads a record (`read`), says which offset an entry
already reflects (`through`), and reacts to a record on its entry (`react`) with the
records to send and the entry's new value. Everything else happens here, once:

- Input is taken in batches of up to `BATCH_MAX` records, within the agent's wait.
- A record that cannot be read (`Poison`), or whose reaction fails, goes to the DLQ
  with its bytes and reason (`foundation.dead_letters`); it never stops the partition.
- The entry of a key is this batch's, else one decided and sent but not yet stored
  (`pending`), else the table's. A record at or below the offset the entry reflects is
  a redelivery after a restart: the entry already holds its effect, so it is skipped.
- Batches are pipelined: while the records of one batch await the broker's acks, the
  next is handled on the entries the earlier left. Each batch finishes strictly after
  the one before it: the broker holds every record it sent (and every dead letter),
  then its entries are written to the table and its changelog, then its answers are
  sent, then the broker holds its changelog writes too, and only then is its input
  acknowledged, so its offsets can be committed. A crash repeats work; it never loses
  any.
- Any error while finishing stops the whole worker (`app.crash`) without acknowledging
  the batch or any later one; the process supervisor restarts it.
- A record past the next offset of its partition (Faust can hand one over after a
  rebalance) is not handled: the partition is read again from the next offset
  (`Shell._in_order`), so the redelivery skip above never passes records unseen.

This module is also the one place that goes around Faust's table and producer APIs
and reads its committed offsets (`Shell.entry`, `_store`, `_persisted`, `producer`,
`_in_order`): see there why, and
`tests/integration/test_table_contract.py`, the contract test on Apache Kafka that a
state written this way recovers after a restart as `table[key] = value` would.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

import mode
from faust.serializers import codecs
from faust.types import TP, EventT, StreamT, TableT, TopicT
from faust.types.tuples import Message
from pydantic import ValidationError

from streams.app import Streams
from foundation.dead_letters import Poison, dead_letter, letter_limit

log = logging.getLogger(__name__)

BATCH_MAX = 1000
IN_FLIGHT = 4  # batches handled and sent but not yet acknowledged by the broker

Acknowledge = Callable[[EventT], Awaitable[bool]]
Record = tuple[str, bytes, bytes, int | None]
"""A record to send: topic, key, value, and partition (None: the key's partition)."""


def too_large(value: bytes, max_bytes: int | None, what: str, why: str) -> Poison | None:
    """The `Poison` for a `value` over `max_bytes`, refused unread; None if it fits."""
    if max_bytes is None or len(value) <= max_bytes:
        return None
    return Poison(f"too large: {len(value)} bytes, {what} may take {max_bytes} ({why})")


def invalid(err: ValidationError, what: str) -> Poison:
    """The `Poison` for a record that did not validate as `what` ("command", "alert")."""
    problems = err.errors(include_url=False)
    if any(p["type"] == "json_invalid" for p in problems):
        return Poison(f"not valid JSON: {problems[0]['msg']}")
    detail = "; ".join(f"{'.'.join(map(str, p['loc'])) or 'value'}: {p['msg']}" for p in problems[:5])
    return Poison(f"not a valid {what}: {detail}")


def record_time(message: Message, otherwise: Callable[[], datetime]) -> datetime:
    """The record's own timestamp: the same on every redelivery, unlike the clock."""
    if message.timestamp and message.timestamp > 0:
        return datetime.fromtimestamp(message.timestamp, UTC)
    return otherwise()


@dataclass(frozen=True, slots=True)
class Reaction:
    """What one record causes: the entry's new value (None: unchanged), the records sent
    at once, and the answers sent once the batch's records and entries are stored."""

    entry: Any = None
    sends: Sequence[Record] = ()
    answers: Sequence[Record] = ()


NOTHING = Reaction()


class Step(Protocol):
    """An agent's logic, without I/O. `read` returns the record's key and input (or a
    `Reaction` that concerns no entry); both it and `react` raise `Poison` for the DLQ."""

    table: TableT
    empty: Any  # the entry of a key the table does not hold
    failure: str  # how a reaction that raised is described in its dead letter

    def read(self, message: Message) -> tuple[str, Any] | Reaction: ...

    def through(self, entry: Any, message: Message) -> int: ...

    def react(self, value: Any, entry: Any, message: Message) -> Reaction: ...


class Shell:
    """Applies batches of records to one `Step`; all I/O of the agent happens here."""

    def __init__(self, streams: Streams, step: Step) -> None:
        self.streams = streams
        self.step = step
        self.table = step.table
        changelog = self.table.changelog_topic
        self.changelog_topic = changelog.get_topic_name()
        self.encode_entry = codecs.get_codec(changelog.value_serializer).dumps
        self.pending: dict[str, Any] = {}  # handled and sent, not yet in the table
        self.read_through: dict[int, int] = {}  # input partition -> next offset read
        # Per input partition: the next offset this shell must see, and in which consumer
        # generation that was learnt (see `_in_order`).
        self._next: dict[Any, tuple[int, int]] = {}
        self._last: asyncio.Future | None = None
        self._producer = None
        self._records = None  # the Kafka client under Faust's producer (see `producer`)
        # A step may bring something up to date before each batch (the intake's silences).
        self._prepare: Callable[[], Awaitable[None]] | None = getattr(step, "prepare", None)

    def entry(self, key: str) -> Any:
        """The latest entry for `key`: pending, else in the table, else the step's empty one."""
        found = self.pending.get(key)
        if found is None:
            # The store itself, as `_store` writes it: `table.get` would raise and catch a
            # KeyError per new key and call the app's sensors for every read.
            found = self.table.data.get(key)
        return self.step.empty if found is None else found

    async def apply(self, batch: Sequence[EventT], ack: Acknowledge) -> asyncio.Future:
        """Handle `batch` in order and send what it causes; return the future that finishes it."""
        step = self.step
        records = await self.records()
        if self._prepare is not None:
            await self._prepare()
        working: dict[str, tuple[int, Any]] = {}
        sent: list[asyncio.Future] = []
        answers: list[Record] = []
        taken: list[EventT] = []
        jumped: set[Any] = set()
        for record in batch:
            message = record.message
            if message.tp in jumped or not await self._in_order(message):
                jumped.add(message.tp)
                continue  # not acknowledged: read again from where the partition jumped
            taken.append(record)
            self.read_through[message.partition] = message.offset + 1
            try:
                read = step.read(message)
                if type(read) is Reaction:
                    reaction = read
                else:
                    key, value = read
                    partition, entry = working.get(key) or (message.partition, self.entry(key))
                    if message.offset <= step.through(entry, message):
                        continue  # redelivered after a restart; the entry already holds its effect
                    try:
                        reaction = step.react(value, entry, message)
                    except Poison:
                        raise
                    except Exception as err:  # a bug must not stop the partition behind one record
                        log.exception("%s: cannot react to %s/%s@%s", step.failure,
                                      message.topic, message.partition, message.offset)
                        raise Poison(f"{step.failure}: {err!r}") from None
                    if reaction.entry is not None:
                        working[key] = (partition, reaction.entry)
            except Poison as poison:
                sent.append(await self.dead_letter(message, poison.reason))
                continue
            for topic, k, v, p in reaction.sends:
                sent.append(await records.send(topic, v, key=k, partition=p))
            if reaction.answers:
                answers.extend(reaction.answers)
        for key, (_, entry) in working.items():
            self.pending[key] = entry
        self._last = asyncio.ensure_future(self._finish(self._last, sent, working, answers, taken, ack))
        return self._last

    async def _in_order(self, message: Message) -> bool:
        """False for a record past the next offset of its partition: Faust delivered it after
        skipping records (a batch prefetched before a rebalance, faust-streaming #221, #606).
        Deciding it would let the entry's offset pass the skipped ones, which a restart would
        then skip for good; instead the partition is read again from the next offset.

        The input topics are never compacted and carry no transaction markers, so each
        partition's offsets follow one another; within one consumer generation the next
        offset is one past the last record seen, and at the start of one the offset the
        group committed (what Faust seeks to)."""
        consumer = self.streams.app.consumer
        generation, tp = self.streams.app.consumer_generation_id, message.tp
        known = self._next.get(tp)
        expected = known[0] if known is not None and known[1] == generation else \
            consumer._committed_offset.get(tp)
        if expected is not None and message.offset > expected:
            log.warning("%s: record %s arrived before %s..%s; reading %s again from %s",
                        self.step.failure, message.offset, expected, message.offset - 1, tp, expected)
            await consumer.seek(tp, expected)
            self._next[tp] = (expected, generation)
            return False
        if expected is None or message.offset == expected:
            self._next[tp] = (message.offset + 1, generation)
        return True

    async def producer(self):
        # Asked once: Faust's `maybe_start_producer` yields to the loop three times per call,
        # and every yield lets the sender ship what is buffered so far, a record or two.
        if self._producer is None:
            self._producer = await self.streams.app.maybe_start_producer()
        return self._producer

    async def records(self):
        """The aiokafka producer under Faust's: the records of every reaction, entry and
        answer go to it directly. Faust's `Producer.send` adds, per record, a signal no
        one here listens to and a wrapper around the same call (a tenth of a decided
        command's own cost); dead letters, with headers, still go through Faust's."""
        if self._records is None:
            self._records = (await self.producer())._ensure_producer()
        return self._records

    async def dead_letter(self, message: Message, reason: str) -> asyncio.Future:
        return await send_dead_letter(self.streams, message, reason, await self.producer())

    async def _finish(self, previous: asyncio.Future | None, sent: list[asyncio.Future],
                      working: dict[str, tuple[int, Any]], answers: list[Record],
                      batch: Sequence[EventT], ack: Acknowledge) -> None:
        try:
            if previous is not None:
                await previous  # a failure of the batch before fails this one too
            if sent:  # records and dead letters: in the log before any entry refers to them
                await asyncio.gather(*sent)
            records = await self.records()
            stored = [await self._store(records, key, partition, entry)
                      for key, (partition, entry) in working.items()]
            for topic, key, value, partition in answers:
                await records.send(topic, value, key=key, partition=partition)
            if stored:
                # An entry lost on its way to the changelog would be silently stale after a
                # restart, so its input is acknowledged only once it is stored.
                await asyncio.gather(*stored)
            for record in batch:
                await ack(record)
        except Exception as exc:
            # Stop the worker even when no further batch arrives to notice: nothing from
            # here on was acknowledged, so a restarted worker handles it all again.
            await self.streams.app.crash(exc)
            raise

    async def _store(self, records, key: str, partition: int, entry: Any) -> asyncio.Future:
        """What `table[key] = entry` does, with two differences: the changelog partition is
        the input record's (Faust reads it from a "current event", which a batch has not),
        and the write skips Faust's one-at-a-time changelog buffer, so that a batch's
        entries go out as one produce request and can be awaited."""
        self.table.data[key] = entry
        if self.pending.get(key) is entry:
            del self.pending[key]
        stored = await records.send(self.changelog_topic, self.encode_entry(entry), key=key.encode(),
                                    partition=partition)
        stored.add_done_callback(self._persisted)
        return stored

    def _persisted(self, stored: asyncio.Future) -> None:
        # What Faust's own changelog callback does: a store that persists remembers the
        # offset it holds, so recovery starts from there.
        if stored.cancelled() or stored.exception() is not None:
            return
        written = stored.result()
        self.table.data.set_persisted_offset(TP(written.topic, written.partition), written.offset)


async def send_dead_letter(streams: Streams, message: Message, reason: str,
                           producer: Any = None) -> asyncio.Future:
    """Send `message` to the DLQ with `reason`; the future resolves once the broker holds it.

    The letter fits whatever the message's size (`foundation.dead_letters`)."""
    log.warning("dead letter from %s/%s@%s: %s", message.topic, message.partition, message.offset,
                reason[:500])
    key, value, headers = dead_letter(
        message.value, message.key, message.topic, message.partition, message.offset, reason,
        limit=letter_limit(streams.settings.kafka.max_message_bytes))
    producer = producer or await streams.app.maybe_start_producer()
    return await producer.send(streams.settings.topics.name("dlq"), key, value, message.partition,
                               None, headers)


def install(streams: Streams, channel: TopicT, name: str, step: Step, *, batch_wait_s: float,
            batch_max: int = BATCH_MAX, in_flight: int = IN_FLIGHT) -> Shell:
    """Attach an agent named `name` reading `channel` through a shell around `step`."""
    shell = Shell(streams, step)

    # An error stops the whole worker rather than restarting the agent: the failed batch
    # and every later one stay unacknowledged, so they are redelivered after a restart.
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

    return shell
