"""The projector: one consumer of `<prefix>.events` in the projector group, applying
batches to the read models until stopped (see the package docstring for how it resumes
and what it does when the log went back)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence

import asyncpg
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener
from aiokafka.errors import KafkaError
from aiokafka.structs import ConsumerRecord, OffsetAndMetadata, TopicPartition

from foundation.dead_letters import dead_letter, letter_limit
from foundation.log_identity import LogProbe
from foundation.settings import Settings
from projections import changes, offsets
from projections.apply import PROJECTION, apply_batch
from projections.replay import log_reset
from projections.runner.batch import Batch, build_batch
from projections.runner.connections import (
    DATABASE_ERRORS, KafkaClients, Patience, Stopped, close_db, connect_db, start_kafka,
)
from projections.runner.isolation import POISON_AFTER, apply_one_by_one, is_data_error

log = logging.getLogger("warroom.projector")

PRUNE_EVERY_S = 60.0
STOP_GRACE_S = 15.0
# How often the log is checked for having gone back (besides at every assignment).
LOG_CHECK_S = 2.0


class _Seeker(ConsumerRebalanceListener):
    def __init__(self, projector: Projector) -> None:
        self.projector = projector

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        # Let the batch in flight commit before another projector takes its partitions.
        async with self.projector._db_lock:
            pass

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        await self.projector._check_log(assigned)
        await self.projector._seek_to_stored(assigned)


class Projector:
    """One projector: `start()`, then it applies batches until `stop()`.

    `caught_up()` tells whether every assigned partition has been applied to its
    end; `applied` counts events applied since start.
    """

    def __init__(self, settings: Settings, *, schema: str | None = None, projection: str = PROJECTION) -> None:
        self.settings = settings
        self.schema = schema or settings.postgres.schema_name
        self.projection = projection
        self.topic = settings.topics.name("events")
        self.applied = 0
        self.repeated = 0
        self.rejected = 0
        self._conn: asyncpg.Connection | None = None
        self._consumer: AIOKafkaConsumer | None = None
        self._producer: AIOKafkaProducer | None = None
        self._probe: LogProbe | None = None
        self._db_lock = asyncio.Lock()
        self._rewind = False
        self._generation = 0
        self._task: asyncio.Task | None = None
        self._stopping = asyncio.Event()
        self._patience = Patience(self._stopping)
        self._kafka: KafkaClients | None = None
        self._last_prune = time.monotonic()
        self._next_log_check = 0.0
        self._epoch: int | None = None
        self.log_problem: str | None = None  # why the log is not the one the read models describe
        self.log_checks = 0
        self.resets = 0

    # --- lifecycle -------------------------------------------------------------

    async def start(self) -> None:
        """Connect (retrying until the servers answer), migrate, and start applying."""
        await self._connect_db()
        await self._start_kafka()
        self._task = asyncio.create_task(self._loop(), name="projector")

    def request_stop(self) -> None:
        """Ask the loop to end after the batch in flight; `stop()` waits for it."""
        self._stopping.set()

    async def stop(self) -> None:
        """Finish the batch in flight, then disconnect."""
        self._stopping.set()
        if self._task is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self._task), STOP_GRACE_S)
            except asyncio.TimeoutError:
                self._task.cancel()
            await asyncio.wait([self._task])
        await self._stop_kafka()
        await self._close_db()

    async def wait(self) -> None:
        """Until the loop ends: after a stop was requested, or by an unexpected error (raised)."""
        if self._task is not None:
            await self._task

    async def caught_up(self) -> bool:
        """True when every assigned partition is applied up to the log's end."""
        lag = await self.lag()
        return lag is not None and lag == 0

    async def lag(self) -> int | None:
        """Events on assigned partitions not yet applied (None before assignment)."""
        consumer = self._consumer
        if consumer is None or not consumer.assignment():
            return None
        assigned = list(consumer.assignment())
        ends = await consumer.end_offsets(assigned)
        async with self._db_lock:
            done = await offsets.load(self._require_db(), self.schema, self.projection, self.topic,
                                      [tp.partition for tp in assigned])
        return sum(max(0, end - done.get(tp.partition, 0)) for tp, end in ends.items())

    # --- the loop --------------------------------------------------------------

    async def _loop(self) -> None:
        failures = 0  # consecutive failures of any kind: sets the backoff
        refused = 0  # consecutive batches that failed on their own data
        prefetch: asyncio.Task[Batch] | None = None
        try:
            while not self._stopping.is_set():
                try:
                    if self._conn is None or self._conn.is_closed():
                        await self._connect_db()
                    if time.monotonic() >= self._next_log_check:
                        await self._check_log()
                    if self.log_problem is not None:
                        prefetch = await _discard(prefetch)
                        await self._patience.pause(self._next_log_check - time.monotonic())
                        continue
                    if self._rewind:
                        prefetch = await _discard(prefetch)
                        await self._seek_to_stored(list(self._consumer.assignment()))
                        continue
                    batch = await (prefetch or self._fetch())
                    prefetch = None
                    if self._rewind or not len(batch):
                        continue  # read from positions that are not the stored ones
                    # Decode the next batch while PostgreSQL works on this one.
                    prefetch = asyncio.create_task(self._fetch())
                    if await self._apply(batch, one_by_one=refused >= POISON_AFTER):
                        failures = refused = 0
                except (asyncio.CancelledError, Stopped):
                    raise
                except Exception as err:  # noqa: BLE001 - every failure is retried from stored offsets
                    failures += 1
                    prefetch = await _discard(prefetch)
                    self._rewind = True
                    if isinstance(err, KafkaError):
                        log.warning("Kafka error, retrying: %r", err)
                        if failures % 5 == 0:
                            await self._restart_kafka()
                    elif is_data_error(err):
                        refused += 1
                        log.exception("a batch failed on its data (attempt %d); retrying", refused)
                    else:
                        log.warning("PostgreSQL error, reconnecting and re-reading from stored offsets: %r", err)
                        await self._close_db()
                    await self._patience.backoff(failures)
        except Stopped:
            pass
        finally:
            await _discard(prefetch)

    async def _fetch(self) -> Batch:
        consumer = self._consumer
        assert consumer is not None
        cfg = self.settings.projector
        generation = self._generation
        records = await consumer.getmany(timeout_ms=500, max_records=cfg.batch_max)
        count = sum(len(r) for r in records.values())
        deadline = time.monotonic() + cfg.batch_wait_ms / 1000
        # A short wait for more, so a burst is applied in one transaction, not many.
        while records and count < cfg.batch_max and (left := deadline - time.monotonic()) > 0:
            more = await consumer.getmany(timeout_ms=int(left * 1000) or 1, max_records=cfg.batch_max - count)
            if not more:
                break
            for tp, recs in more.items():
                records.setdefault(tp, []).extend(recs)
                count += len(recs)
        batch = await build_batch(records)
        batch.generation = generation
        return batch

    async def _apply(self, batch: Batch, *, one_by_one: bool = False) -> bool:
        """Apply `batch` with its offsets; False if it was stale and dropped."""
        if one_by_one:
            return await self._apply_one_by_one(batch)
        # Under the lock, so a rebalance waits for the whole batch, dead letters included.
        async with self._db_lock:
            if batch.generation != self._generation:
                # Read before the consumer was pointed at the stored offsets (a rebalance
                # ran meanwhile): drop it and read again from the table's offsets.
                self._rewind = True
                return False
            if batch.rejected:
                await self._dead_letter(batch.rejected)
            result = await apply_batch(self._require_db(), self.schema, batch.events, batch.positions,
                                       projection=self.projection)
            await self._maybe_prune()
        self.applied += result.applied
        self.repeated += result.repeated
        if result.repeated:
            log.info("skipped %d event(s) already applied", result.repeated)
        await self._commit_kafka(batch.positions)
        return True

    async def _apply_one_by_one(self, batch: Batch) -> bool:
        """After a batch failed on its data more than once: `isolation.apply_one_by_one`."""
        log.warning("applying a batch of %d event(s) one by one to isolate a bad one", len(batch))
        async with self._db_lock:
            if batch.generation != self._generation:
                self._rewind = True
                return False
            self.applied += await apply_one_by_one(self._require_db(), self.schema, self.projection, batch,
                                                   self._dead_letter)
        await self._commit_kafka(batch.positions)
        return True

    async def _dead_letter(self, rejected: Sequence[tuple[ConsumerRecord, str]]) -> None:
        assert self._producer is not None
        dlq = self.settings.topics.name("dlq")
        for record, reason in rejected:
            log.warning("dead-lettering %s[%d]@%d: %s", record.topic, record.partition, record.offset, reason)
            key, value, headers = dead_letter(record.value, record.key, record.topic, record.partition,
                                              record.offset, f"projector: {reason}",
                                              limit=letter_limit(self.settings.kafka.max_message_bytes))
            await self._producer.send_and_wait(dlq, value, key=key, headers=headers)
        self.rejected += len(rejected)

    async def _check_log(self, partitions: list[TopicPartition] | None = None) -> None:
        """Whether the log is still the one the read models describe; when it went back,
        rebuild (`on_log_reset = "rebuild"`) or hold off (`log_problem` says why)."""
        self._next_log_check = time.monotonic() + LOG_CHECK_S
        consumer, probe = self._consumer, self._probe
        if consumer is None or probe is None:
            return
        ours = [tp.partition for tp in (consumer.assignment() if partitions is None else partitions)
                if tp.topic == self.topic]
        async with self._db_lock:
            try:
                conn = self._require_db()
                known = await log_reset.recorded(conn, self.schema, self.topic)
                stored = await offsets.load(conn, self.schema, self.projection, self.topic, ours)
            except DATABASE_ERRORS as err:
                log.warning("cannot check the log against the read models yet: %r", err)
                return
        try:
            why, cluster = await probe.check(known.cluster_id if known else None, self.topic, stored)
        except (KafkaError, OSError) as err:
            log.info("cannot check the log yet: %r", err)
            return
        self.log_checks += 1
        async with self._db_lock:
            try:
                conn = self._require_db()
                if why is None:
                    await self._log_is_ours(conn, known, cluster)
                elif self.settings.projector.on_log_reset == "rebuild":
                    log.warning("the log went back: %s; rebuilding the read models from the log there is now", why)
                    self._epoch = await log_reset.reset(conn, self.schema, self.topic, cluster, why)
                    self.resets += 1
                    self.log_problem = None
                    self._rewind = True
                else:
                    if why != self.log_problem:
                        log.error("the log went back: %s; applying nothing until it is the log the read models "
                                  "describe (or the projector runs with projector.on_log_reset = rebuild)", why)
                    self.log_problem = why
            except DATABASE_ERRORS as err:
                log.warning("cannot check the log against the read models yet: %r", err)

    async def _log_is_ours(self, conn: asyncpg.Connection, known: log_reset.Recorded | None,
                           cluster: str | None) -> None:
        if self.log_problem is not None:
            log.info("the log is the one the read models describe again")
            self.log_problem = None
            self._rewind = True
        if known is None or (cluster is not None and known.cluster_id != cluster):
            await log_reset.record(conn, self.schema, self.topic, cluster)
            known = await log_reset.recorded(conn, self.schema, self.topic)
        if known is not None and self._epoch is not None and known.epoch != self._epoch:
            # Another projector of the group started the read models again: read from what is stored.
            self._rewind = True
        self._epoch = known.epoch if known is not None else None

    async def _commit_kafka(self, positions: dict[tuple[str, int], int]) -> None:
        # Informational only: the table is what restarts read.
        consumer = self._consumer
        if consumer is None:
            return
        try:
            await consumer.commit({TopicPartition(t, p): OffsetAndMetadata(o, "") for (t, p), o in positions.items()})
        except KafkaError as err:
            log.debug("could not commit offsets to Kafka (the table has them): %r", err)

    async def _maybe_prune(self) -> None:
        if time.monotonic() - self._last_prune < PRUNE_EVERY_S:
            return
        self._last_prune = time.monotonic()
        await changes.prune(self._require_db(), self.schema, self.settings.sse.change_retention)

    async def _seek_to_stored(self, partitions: list[TopicPartition]) -> None:
        """Point the consumer at the offsets the read models recorded (or the log's start).

        Every batch read before this is stale from now on (see `_apply`).
        """
        consumer = self._consumer
        if consumer is None:
            return
        ours = [tp for tp in partitions if tp.topic == self.topic]
        async with self._db_lock:
            self._generation += 1
            try:
                stored = await offsets.load(self._require_db(), self.schema, self.projection, self.topic,
                                            [tp.partition for tp in ours])
            except DATABASE_ERRORS as err:
                # The loop reconnects and seeks before it applies anything.
                log.warning("cannot read stored offsets yet: %r", err)
                self._rewind = True
                return
            for tp in ours:
                # Offset 0 of a log that no longer starts there resets to its start
                # (auto_offset_reset=earliest), without waiting as seek_to_beginning does.
                consumer.seek(tp, stored.get(tp.partition, 0))
            self._rewind = False
        log.info("resuming partitions %s", {tp.partition: stored.get(tp.partition, 0) for tp in ours})

    # --- connections -----------------------------------------------------------

    def _require_db(self) -> asyncpg.Connection:
        if self._conn is None or self._conn.is_closed():
            raise asyncpg.InterfaceError("not connected to PostgreSQL")
        return self._conn

    async def _connect_db(self) -> None:
        self._conn = await connect_db(self.settings, self.schema, self._patience)

    async def _close_db(self) -> None:
        conn, self._conn = self._conn, None
        await close_db(conn)

    async def _start_kafka(self) -> None:
        clients = await start_kafka(self.settings, self._patience)
        self._consumer, self._producer, self._probe = clients.consumer, clients.producer, clients.probe
        self._kafka = clients
        clients.consumer.subscribe([self.topic], listener=_Seeker(self))

    async def _stop_kafka(self) -> None:
        clients, self._kafka = self._kafka, None
        self._consumer = self._producer = self._probe = None
        if clients is not None:
            await clients.stop()

    async def _restart_kafka(self) -> None:
        await self._stop_kafka()
        await self._start_kafka()


async def _discard(task: asyncio.Task | None) -> None:
    """Cancel `task` and wait for it to end, ignoring its outcome."""
    if task is not None:
        task.cancel()
        await asyncio.wait([task])
    return None
