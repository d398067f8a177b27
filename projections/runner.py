"""The projector process: read `<prefix>.events`, apply batches to the read models.

The loop only moves events: which records form a batch, where to resume, what
to do when Kafka or PostgreSQL go away. What a batch *does* is `projections.apply`.

Resuming: the truth is `projection_offsets`, written in each batch's transaction.
On every partition assignment the consumer seeks to those offsets (or the log's
start), so a crash at any point neither loses nor doubles a row. Kafka's own
committed offsets are written after each batch for tools that watch group lag.

A log that went back (`foundation.log_identity`: another cluster, or partitions that end
before the offsets stored) is looked for at every assignment and every few seconds.
Then nothing more is applied: with `projector.on_log_reset = "rebuild"` the read models
are emptied and the new log read from its start (`projections.replay.log_reset`), otherwise
the projector waits until the log is the one the read models describe again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import signal
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import asyncpg
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener
from aiokafka.errors import KafkaError
from aiokafka.structs import ConsumerRecord, OffsetAndMetadata, TopicPartition

from foundation.dead_letters import Poison, dead_letter, letter_limit
from foundation.event_loop import tune_gc
from foundation.fetching import FETCH_WAIT_MS
from foundation.log_identity import LogProbe
from foundation.settings import Settings
from projections import changes, offsets
from projections.replay import log_reset
from projections.apply import PROJECTION, apply_batch
from projections.logged import LoggedEvent
from projections.rejects import decode
from projections.schema import migrate
from projections.replay.switch import HOLD_OFF_SWITCH

log = logging.getLogger("warroom.projector")

# Errors after which the connection is dropped and the batch read again from the table's offsets.
DATABASE_ERRORS = (OSError, asyncio.TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError)
BACKOFF_MAX_S = 5.0
PRUNE_EVERY_S = 60.0
STOP_GRACE_S = 15.0
DECODE_SLICE = 100
# A batch refused this many times for its data is applied event by event.
POISON_AFTER = 2
# How often the log is checked for having gone back (besides at every assignment).
LOG_CHECK_S = 2.0


class Stopped(Exception):
    """Raised out of a connect/retry loop once a stop was requested."""


class SystemicFailure(RuntimeError):
    """Every event of a batch failed: a fault of this process or its database, not of the events."""


def _is_data_error(err: BaseException) -> bool:
    """Whether the events, not a server, are at fault: PostgreSQL classes 22 (data
    exception) and 23 (integrity), or a plain Python error while folding them."""
    if isinstance(err, (asyncpg.DataError, asyncpg.IntegrityConstraintViolationError)):
        return True
    return not isinstance(err, (*DATABASE_ERRORS, KafkaError, SystemicFailure))


@dataclass
class Batch:
    """Decoded events in log order, the offsets they take each partition to, and rejects."""

    events: list[LoggedEvent] = field(default_factory=list)
    positions: dict[tuple[str, int], int] = field(default_factory=dict)
    rejected: list[tuple[ConsumerRecord, str]] = field(default_factory=list)
    # Which seek the records were read after; a batch read before the latest seek is stale.
    generation: int = 0

    def __len__(self) -> int:
        return len(self.events) + len(self.rejected)


def build_batch(records: dict[TopicPartition, list[ConsumerRecord]]) -> Batch:
    """Decode fetched records, partition by partition in offset order."""
    batch = Batch()
    for tp in sorted(records, key=lambda tp: (tp.topic, tp.partition)):
        _decode_into(batch, records[tp])
        if records[tp]:
            batch.positions[(tp.topic, tp.partition)] = records[tp][-1].offset + 1
    return batch


async def build_batch_cooperatively(records: dict[TopicPartition, list[ConsumerRecord]]) -> Batch:
    """`build_batch`, yielding to the event loop every few hundred records so the
    batch being applied can go on with its next statement as soon as PostgreSQL answers."""
    batch = Batch()
    for tp in sorted(records, key=lambda tp: (tp.topic, tp.partition)):
        recs = records[tp]
        for start in range(0, len(recs), DECODE_SLICE):
            _decode_into(batch, recs[start:start + DECODE_SLICE])
            await asyncio.sleep(0)
        if recs:
            batch.positions[(tp.topic, tp.partition)] = recs[-1].offset + 1
    return batch


def _decode_into(batch: Batch, records: list[ConsumerRecord]) -> None:
    for record in records:
        try:
            event = decode(record.value)
        except Poison as err:
            batch.rejected.append((record, err.reason))
        else:
            batch.events.append(LoggedEvent(event, record.partition, record.offset, record.topic,
                                            record=record))


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
                        await self._pause(self._next_log_check - time.monotonic())
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
                    elif _is_data_error(err):
                        refused += 1
                        log.exception("a batch failed on its data (attempt %d); retrying", refused)
                    else:
                        log.warning("PostgreSQL error, reconnecting and re-reading from stored offsets: %r", err)
                        await self._close_db()
                    await self._backoff(failures)
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
        batch = await build_batch_cooperatively(records)
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
        """After a batch failed on its data more than once: apply it event by event, each
        under a savepoint, and dead-letter the events that cannot be applied, so one bad
        event cannot stall the log. If every event fails the fault is ours, not the
        events': nothing is dead-lettered and the error is raised."""
        log.warning("applying a batch of %d event(s) one by one to isolate a bad one", len(batch))
        async with self._db_lock:
            if batch.generation != self._generation:
                self._rewind = True
                return False
            conn = self._require_db()
            refused: list[tuple[ConsumerRecord, str]] = []
            async with conn.transaction():
                # Held to commit: a savepoint rolled back below releases only its own hold.
                await conn.execute(HOLD_OFF_SWITCH, self.schema)
                for item in batch.events:
                    position = {(item.topic, item.partition): item.offset + 1}
                    try:
                        result = await apply_batch(conn, self.schema, [item], position, projection=self.projection)
                        self.applied += result.applied
                    except Exception as err:  # noqa: BLE001
                        if not _is_data_error(err):
                            raise
                        log.exception("%s[%d]@%d cannot be applied", item.topic, item.partition, item.offset)
                        refused.append((item.record, f"cannot be applied: {type(err).__name__}: {err}"))
                if len(refused) == len(batch.events) > 1:
                    raise SystemicFailure(f"all {len(refused)} events of the batch failed; not dead-lettering")
                await self._dead_letter(batch.rejected + refused)
                await apply_batch(conn, self.schema, [], batch.positions, projection=self.projection)
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
        pg = self.settings.postgres
        attempt = 0
        while True:
            if self._stopping.is_set():
                raise Stopped
            try:
                conn = await asyncpg.connect(pg.dsn, timeout=pg.connect_timeout_s)
                await migrate(conn, self.schema)
                self._conn = conn
                return
            except DATABASE_ERRORS as err:
                attempt += 1
                log.warning("PostgreSQL not available (%r), retrying", err)
                await self._backoff(attempt)

    async def _close_db(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None and not conn.is_closed():
            with contextlib.suppress(Exception):
                await asyncio.wait_for(conn.close(), 5)
            if not conn.is_closed():
                conn.terminate()

    async def _start_kafka(self) -> None:
        k = self.settings.kafka
        attempt = 0
        while True:
            if self._stopping.is_set():
                raise Stopped
            consumer = AIOKafkaConsumer(
                bootstrap_servers=k.bootstrap,
                client_id=f"{k.client_id}-projector",
                group_id=self.settings.projector.group_id,
                enable_auto_commit=False,
                auto_offset_reset="earliest",
                isolation_level="read_committed",
                request_timeout_ms=int(k.request_timeout_s * 1000),
                fetch_max_wait_ms=FETCH_WAIT_MS,  # as the worker's: Tansu answers a fetch only then
            )
            producer = AIOKafkaProducer(
                bootstrap_servers=k.bootstrap,
                client_id=f"{k.client_id}-projector",
                enable_idempotence=k.idempotent_producer,
                acks="all",
                max_request_size=k.max_message_bytes,
                request_timeout_ms=int(k.request_timeout_s * 1000),
            )
            probe = LogProbe(k, "projector-log-check")
            try:
                await consumer.start()
                await producer.start()
                await probe.start()
                self._consumer, self._producer, self._probe = consumer, producer, probe
                consumer.subscribe([self.topic], listener=_Seeker(self))
                return
            except (KafkaError, OSError) as err:
                attempt += 1
                for client in (consumer, producer, probe):
                    with contextlib.suppress(Exception):
                        await client.stop()
                log.warning("Kafka at %s not available (%r), retrying", k.bootstrap, err)
                await self._backoff(attempt)

    async def _stop_kafka(self) -> None:
        consumer, producer, probe = self._consumer, self._producer, self._probe
        self._consumer = self._producer = self._probe = None
        for client in (consumer, producer, probe):
            if client is not None:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(client.stop(), 10)

    async def _restart_kafka(self) -> None:
        await self._stop_kafka()
        await self._start_kafka()

    async def _backoff(self, attempt: int) -> None:
        await self._pause(min(BACKOFF_MAX_S, 0.1 * 2 ** min(attempt, 10)) * random.uniform(0.5, 1.0))

    async def _pause(self, seconds: float) -> None:
        """Wait `seconds`, or less if a stop is requested."""
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), max(0.0, seconds))


async def _discard(task: asyncio.Task | None) -> None:
    """Cancel `task` and wait for it to end, ignoring its outcome."""
    if task is not None:
        task.cancel()
        await asyncio.wait([task])
    return None


async def run(settings: Settings) -> None:
    """Run a projector until SIGTERM or SIGINT, then stop cleanly (`warroom projector`).

    Waits for PostgreSQL and Kafka as long as it takes; raises if the loop dies.
    """
    tune_gc()
    projector = Projector(settings)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, projector.request_stop)
    try:
        await projector.start()
    except Stopped:
        await projector.stop()
        return
    log.info("projecting %s into schema %s", projector.topic, projector.schema)
    try:
        await projector.wait()
    finally:
        await projector.stop()
