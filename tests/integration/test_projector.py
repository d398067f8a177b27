"""The projector against real PostgreSQL and Kafka: redelivery, restarts, kill -9.

The read models must always equal a fold of the log: every (incident, version)
exactly once in the timeline and the change feed, every incident row equal to
folding its events, whatever was redelivered or interrupted.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.structs import TopicPartition

from contracts.common import SYSTEM, Actor
from contracts.events import ZERO_HASH, EventEnvelope, IncidentOpened, RootCauseConfirmed
from harness.letters import ORIGINAL_MAX, assert_holds, poison as junk
from harness.servers import come_back_empty
from harness.waiting import wait_for_async
from projections import incidents
from projections.apply import PROJECTION, apply_batch
from projections.logged import LoggedEvent
from projections.runner import Projector
from foundation.change_feed import channel as changes_channel
from projections.schema import CREATE_MIGRATIONS_TABLE, MIGRATION_1, MIGRATIONS, migrate, quote_ident
from testing.synthetic import synthetic_log
from foundation.chain import seal
from warroom.servers import start_postgres
from foundation.settings import Settings, load_settings
from foundation.topics import ensure_topics

pytestmark = pytest.mark.timeout(300)

REPO = Path(__file__).resolve().parents[2]
TABLES = {
    "incidents": "id", "timeline": "incident_id, version", "notes": "note_id",
    "alerts": "incident_id, fingerprint", "correlation_runs": "run_id",
    "correlation_sources": "run_id, source", "findings": "finding_id", "scorecard": "incident_id", "services": "name",
    "changes": "change_id", "projection_offsets": "projection, topic, partition",
}


def unique_name() -> str:
    return f"proj_{uuid.uuid4().hex[:10]}"


def settings_for(kafka, postgres, name: str, partitions: int = 4, batch_max: int = 500) -> Settings:
    return load_settings(
        kafka={"bootstrap": kafka.bootstrap},
        postgres={"dsn": postgres.dsn, "schema_name": name},
        topics={"prefix": name, "partitions": partitions},
        projector={"group_id": f"{name}-projector", "batch_max": batch_max, "batch_wait_ms": 5},
    )


async def snapshot(conn: asyncpg.Connection, schema: str) -> dict[str, list[tuple]]:
    """Every read-model row, in key order (the change feed without its wall-clock column)."""
    out = {}
    for table, key in TABLES.items():
        rows = await conn.fetch(f'SELECT * FROM "{schema}".{table} ORDER BY {key}')
        out[table] = [tuple(v for k, v in r.items() if k != "created_at") for r in rows]
    return out


def positioned(envelopes: Iterable[EventEnvelope], partitions: int = 3) -> list[LoggedEvent]:
    """The envelopes as a partitioned log would hold them: by incident, offsets per partition."""
    next_offset = [0] * partitions
    out = []
    for e in envelopes:
        p = e.incident_id.int % partitions
        out.append(LoggedEvent(e, p, next_offset[p], "t.events"))
        next_offset[p] += 1
    return out


def positions_of(batch: list[LoggedEvent]) -> dict[tuple[str, int], int]:
    positions: dict[tuple[str, int], int] = {}
    for item in batch:
        positions[(item.topic, item.partition)] = item.offset + 1
    return positions


# --- applying, without Kafka ----------------------------------------------------------


async def test_applying_batches_again_leaves_identical_rows(postgres) -> None:
    schema = unique_name()
    conn = await asyncpg.connect(postgres.dsn)
    try:
        await migrate(conn, schema)
        log = positioned(synthetic_log(1200, concurrent=20))
        batches = [log[i:i + 100] for i in range(0, len(log), 100)]
        for batch in batches:
            await apply_batch(conn, schema, batch, positions_of(batch))
        first = await snapshot(conn, schema)

        # The same batches redelivered, then shifted so each straddles two old ones,
        # then one batch holding every event twice (an at-least-once producer's repeat).
        for batch in batches:
            result = await apply_batch(conn, schema, batch, positions_of(batch))
            assert (result.applied, result.repeated, result.last_change_id) == (0, len(batch), None)
        for start in range(50, len(log), 100):
            await apply_batch(conn, schema, log[start:start + 100], positions_of(log[start:start + 100]))
        await apply_batch(conn, schema, log[:300] + log[:300], positions_of(log[:300]))

        assert await snapshot(conn, schema) == first
        assert len(first["timeline"]) == len(first["changes"]) == len(log)
        assert [r[0] for r in first["changes"]] == list(range(1, len(log) + 1))
    finally:
        await conn.close()


async def test_concurrent_migrations_do_not_race(postgres) -> None:
    schema = unique_name()
    pool = await asyncpg.create_pool(postgres.dsn, min_size=4, max_size=4)
    try:
        applied = await asyncio.gather(*(migrate(pool, schema) for _ in range(4)))
        every = [version for version, _ in MIGRATIONS]
        assert sorted(applied, key=len) == [[], [], [], every]  # one process applied them all
        async with pool.acquire() as conn:
            assert await conn.fetchval(f'SELECT count(*) FROM "{schema}".schema_migrations') == len(every)
    finally:
        await pool.close()


async def test_a_schema_of_the_first_version_upgrades_in_place_and_goes_on(postgres) -> None:
    """A live schema built before root causes existed gains them without a rebuild."""
    schema, incident = unique_name(), uuid.uuid4()
    conn = await asyncpg.connect(postgres.dsn)
    try:
        s = quote_ident(schema)
        await conn.execute(CREATE_MIGRATIONS_TABLE.format(s=s) + MIGRATION_1.format(s=s))
        await conn.execute(f"INSERT INTO {s}.schema_migrations (version) VALUES (1)")
        # The incident as the first version projected it (version 1: opened).
        await conn.execute(f"INSERT INTO {s}.incidents (id, title, service, severity, status, version, opened_at) "
                           "VALUES ($1, 'db slow', 'checkout', 'high', 'open', 1, now())", incident)

        assert await migrate(conn, schema) == [version for version, _ in MIGRATIONS if version > 1]
        event = seal(event_id=uuid.uuid4(), incident_id=incident, version=2,
                     data=RootCauseConfirmed(service="db", by="alice"), occurred_at=datetime.now(UTC),
                     recorded_at=datetime.now(UTC), causation_id=uuid.uuid4(), correlation_id=incident,
                     actor=Actor(kind="user", id="alice"), prev_hash=ZERO_HASH)
        batch = [LoggedEvent(event, 0, 0, "t.events")]
        await apply_batch(conn, schema, batch, positions_of(batch))
        row = await conn.fetchrow(f"SELECT version, root_cause->>'service' AS cause FROM {s}.incidents")
        assert (row["version"], row["cause"]) == (2, "db")
        assert await conn.fetchval(f"SELECT service FROM {s}.scorecard WHERE incident_id = $1", incident) == "db"
    finally:
        await conn.close()


# --- the log, folded ---------------------------------------------------------------


async def read_log(settings: Settings) -> list[tuple[int, int, bytes]]:
    """Every record on the events topic as (partition, offset, value)."""
    topic = settings.topics.name("events")
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka.bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        parts = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic)
                 or await _partitions(consumer, topic)]
        consumer.assign(parts)
        await consumer.seek_to_beginning(*parts)
        ends = await consumer.end_offsets(parts)
        records: list[tuple[int, int, bytes]] = []
        async def behind() -> bool:
            return any([await consumer.position(tp) < ends[tp] for tp in parts])

        while await behind():
            for tp, recs in (await consumer.getmany(timeout_ms=1000)).items():
                records.extend((r.partition, r.offset, r.value) for r in recs)
        return records
    finally:
        await consumer.stop()


async def _partitions(consumer: AIOKafkaConsumer, topic: str) -> set[int]:
    await consumer._client.force_metadata_update()
    return consumer.partitions_for_topic(topic) or set()


def fold_log(records: list[tuple[int, int, bytes]]) -> tuple[dict, set]:
    """What the read models must hold: incident rows folded from the log, and the
    (incident, version) keys of the timeline; repeats and unreadable records skipped."""
    rows: dict = {}
    keys: set = set()
    for _, _, value in sorted(records, key=lambda r: (r[0], r[1])):
        try:
            event = EventEnvelope.model_validate_json(value)
        except ValueError:
            continue
        if (event.incident_id, event.version) in keys:
            continue
        keys.add((event.incident_id, event.version))
        rows[event.incident_id] = incidents.evolve(rows.get(event.incident_id), event)
    return rows, keys


async def assert_read_models_match_log(conn: asyncpg.Connection, settings: Settings) -> int:
    schema = settings.postgres.schema_name
    expected_rows, expected_keys = fold_log(await read_log(settings))
    timeline = await conn.fetch(f'SELECT incident_id, version FROM "{schema}".timeline')
    changes = await conn.fetch(
        f'SELECT incident_id, version, payload FROM "{schema}".changes WHERE type <> \'reset\' ORDER BY change_id')
    assert {(r[0], r[1]) for r in timeline} == expected_keys
    assert len(timeline) == len(expected_keys)
    assert len(changes) == len(expected_keys), "the change feed has a row per event, none twice"
    assert {(r[0], r[1]) for r in changes} == expected_keys
    # Within an incident, changes come in version order.
    last: dict = {}
    for incident_id, version, _ in changes:
        assert version > last.get(incident_id, 0)
        last[incident_id] = version
    loaded = await incidents.load(conn, schema, list(expected_rows))
    assert {i: incidents.to_summary(r) for i, r in loaded.items()} == \
        {i: incidents.to_summary(r) for i, r in expected_rows.items()}
    payload = json.loads(changes[-1]["payload"])
    assert payload["incident"]["version"] == payload["version"]
    return len(expected_keys)


async def applied_to_end(conn: asyncpg.Connection, settings: Settings) -> bool:
    """Stored offsets have reached the end of every partition of the events topic."""
    topic = settings.topics.name("events")
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka.bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        parts = [TopicPartition(topic, p) for p in await _partitions(consumer, topic)]
        ends = await consumer.end_offsets(parts)
    finally:
        await consumer.stop()
    stored = {p: o for (t, p), o in (await _stored(conn, settings)).items() if t == topic}
    return all(stored.get(tp.partition, 0) >= end for tp, end in ends.items())


async def _stored(conn: asyncpg.Connection, settings: Settings) -> dict[tuple[str, int], int]:
    try:
        rows = await conn.fetch(
            f'SELECT topic, partition, next_offset FROM "{settings.postgres.schema_name}".projection_offsets '
            "WHERE projection = $1", PROJECTION)
    except asyncpg.UndefinedTableError:
        return {}
    return {(r[0], r[1]): r[2] for r in rows}


# --- producing -------------------------------------------------------------------------


def encoded(envelopes: Iterable[EventEnvelope], *, repeat_every: int = 0) -> list[tuple[bytes, bytes]]:
    """(key, value) records; every `repeat_every`-th event is written twice, as a
    producer retrying after a lost acknowledgement would."""
    out = []
    for n, e in enumerate(envelopes, 1):
        record = (str(e.incident_id).encode(), e.model_dump_json(by_alias=True).encode())
        out.append(record)
        if repeat_every and n % repeat_every == 0:
            out.append(record)
    return out


async def produce(settings: Settings, records: list[tuple[bytes, bytes]], *, pace: int = 0) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka.bootstrap, enable_idempotence=False,
                                acks="all", linger_ms=5)
    await producer.start()
    try:
        futures = []
        for n, (key, value) in enumerate(records, 1):
            futures.append(await producer.send(settings.topics.name("events"), value, key=key))
            if pace and n % pace == 0:  # let the projector interleave with the producer
                await asyncio.gather(*futures)
                futures.clear()
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


async def dead_letters(settings: Settings) -> list[dict]:
    topic = settings.topics.name("dlq")
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=settings.kafka.bootstrap,
                                auto_offset_reset="earliest", enable_auto_commit=False,
                                group_id=f"{settings.topics.prefix}-dlq-reader")
    await consumer.start()
    try:
        # Everything up to the topic's end as of now: one fetch may return only a part.
        partitions = consumer.assignment() or set()
        while not partitions:
            await consumer.getmany(timeout_ms=200)
            partitions = consumer.assignment()
        ends = await consumer.end_offsets(list(partitions))
        found: list[dict] = []
        while [tp for tp, end in ends.items() if await consumer.position(tp) < end]:
            for recs in (await consumer.getmany(timeout_ms=1000)).values():
                found.extend(json.loads(r.value) for r in recs)
        return found
    finally:
        await consumer.stop()


# --- the projector, in process ------------------------------------------------------------


async def test_projector_follows_the_log_and_resumes_where_it_stopped(kafka, postgres) -> None:
    name = unique_name()
    settings = settings_for(kafka, postgres, name)
    await ensure_topics(settings)
    log = list(synthetic_log(1500, seed=11))
    await produce(settings, encoded(log[:900], repeat_every=50) + [(b"x", b"{not json")])

    conn = await asyncpg.connect(postgres.dsn)
    notified: list[int] = []
    projector = Projector(settings)
    try:
        await projector.start()
        await wait_for_async(lambda: applied_to_end(conn, settings), timeout=90,
                             message="projector applied the first 900 events")
        await conn.add_listener(changes_channel(name), lambda *args: notified.append(int(args[3])))
        assert await projector.caught_up()
        await projector.stop()

        # A new projector of the same group picks up where the table says.
        await produce(settings, encoded(log[900:], repeat_every=50) + [(b"y", b'{"type":"Nope"}')])
        projector = Projector(settings)
        await projector.start()
        await wait_for_async(lambda: applied_to_end(conn, settings), timeout=90,
                             message="second projector applied the rest")
        await wait_for_async(lambda: notified and notified[-1] == len(log), timeout=10,
                             message="NOTIFY of the last change id")
        assert projector.applied == 600
        assert await assert_read_models_match_log(conn, settings) == len(log)

        letters = await dead_letters(settings)
        assert sorted(d["reason"].split(":")[1].strip() for d in letters) == ["invalid JSON", "invalid event"]
        assert {d["topic"] for d in letters} == {settings.topics.name("events")}
    finally:
        await projector.stop()
        await conn.close()


# --- kill -9 under load -------------------------------------------------------------------


def spawn_projector(settings: Settings, log_path: Path) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WARROOM_")}
    env.update({
        "WARROOM_KAFKA__BOOTSTRAP": settings.kafka.bootstrap,
        "WARROOM_POSTGRES__DSN": settings.postgres.dsn,
        "WARROOM_POSTGRES__SCHEMA_NAME": settings.postgres.schema_name,
        "WARROOM_TOPICS__PREFIX": settings.topics.prefix,
        "WARROOM_TOPICS__PARTITIONS": str(settings.topics.partitions),
        "WARROOM_PROJECTOR__GROUP_ID": settings.projector.group_id,
        "WARROOM_PROJECTOR__BATCH_MAX": "300",
        "PYTHONPATH": str(REPO),
    })
    out = open(log_path, "ab")
    return subprocess.Popen([sys.executable, "-m", "projections"], cwd=REPO, env=env,
                            stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


async def test_kill_9_mid_stream_loses_and_doubles_nothing(kafka, postgres, tmp_path) -> None:
    name = unique_name()
    settings = settings_for(kafka, postgres, name)
    await ensure_topics(settings)
    records = encoded(synthetic_log(10_000, seed=3, concurrent=200), repeat_every=97)
    conn = await asyncpg.connect(postgres.dsn)
    log_path = tmp_path / "projector.log"
    first = spawn_projector(settings, log_path)
    second: subprocess.Popen | None = None
    producing = asyncio.create_task(produce(settings, records, pace=250))
    try:
        async def some_applied() -> bool:
            try:
                return await conn.fetchval(f'SELECT count(*) FROM "{name}".timeline') >= 2500
            except asyncpg.UndefinedTableError:
                return False

        await wait_for_async(some_applied, timeout=120, message="projector applied 2,500 events")
        first.send_signal(signal.SIGKILL)
        first.wait()
        applied_at_kill = await conn.fetchval(f'SELECT count(*) FROM "{name}".timeline')
        assert applied_at_kill < 10_000, "the kill should land mid-stream"

        second = spawn_projector(settings, log_path)
        await producing
        await wait_for_async(lambda: applied_to_end(conn, settings), timeout=180,
                             message=f"restarted projector caught up (log: {log_path})")
        assert await assert_read_models_match_log(conn, settings) == 10_000
        assert await conn.fetchval(f'SELECT count(*) FROM "{name}".incidents') == \
            await conn.fetchval(f'SELECT count(DISTINCT incident_id) FROM "{name}".timeline')
    finally:
        producing.cancel()
        for proc in (first, second):
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(20)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        await conn.close()


# --- PostgreSQL going away ------------------------------------------------------------------


async def test_postgres_restart_heals_without_a_person(kafka, pg_dir) -> None:
    private = start_postgres(pg_dir, durable=False)
    name = unique_name()
    # Small batches, so the restart lands while batches are being applied.
    settings = settings_for(kafka, private, name, batch_max=50)
    projector = Projector(settings)
    try:
        await ensure_topics(settings)
        await produce(settings, encoded(synthetic_log(4000, seed=5, concurrent=100)))
        await projector.start()

        async def applied(n: int) -> bool:
            return projector.applied >= n

        await wait_for_async(lambda: applied(300), timeout=60, message="projector under way")
        await asyncio.to_thread(private.restart)
        await wait_for_async(lambda: applied(4000), timeout=120,
                             message="projector reconnected and applied the rest")
        conn = await asyncpg.connect(private.dsn)
        try:
            assert await assert_read_models_match_log(conn, settings) == 4000
        finally:
            await conn.close()
    finally:
        await projector.stop()
        private.stop()


# --- an event PostgreSQL refuses ------------------------------------------------------------


async def test_an_event_postgres_refuses_is_dead_lettered_and_the_rest_applied(kafka, postgres) -> None:
    name = unique_name()
    settings = settings_for(kafka, postgres, name, partitions=2)
    good = list(synthetic_log(400, seed=9, concurrent=10))
    # Valid JSON and a valid event, but PostgreSQL text cannot hold a NUL character.
    poison = seal(event_id=uuid.uuid4(), incident_id=uuid.uuid4(), version=1,
                  data=IncidentOpened(title="bad\x00title", service="checkout", severity="low"),
                  occurred_at=good[0].occurred_at, recorded_at=good[0].occurred_at,
                  causation_id=uuid.uuid4(), correlation_id=uuid.uuid4(), actor=SYSTEM, prev_hash=ZERO_HASH)
    await ensure_topics(settings)
    await produce(settings, encoded(good[:200]) + encoded([poison]) + encoded(good[200:]))
    projector = Projector(settings)
    conn = await asyncpg.connect(postgres.dsn)
    try:
        await projector.start()
        await wait_for_async(lambda: applied_to_end(conn, settings), timeout=90,
                             message="projector got past the refused event")
        assert await conn.fetchval(f'SELECT count(*) FROM "{name}".timeline') == len(good)
        assert await conn.fetchval(f'SELECT count(*) FROM "{name}".incidents WHERE id = $1',
                                   poison.incident_id) == 0
        letters = await dead_letters(settings)
        assert len(letters) == 1 and letters[0]["reason"].startswith("projector: cannot be applied")
        assert json.loads(base64.b64decode(letters[0]["original_base64"]))["event_id"] == str(poison.event_id)
    finally:
        await projector.stop()
        await conn.close()


async def test_no_record_is_too_large_to_stop_the_projector(kafka, postgres) -> None:
    name = unique_name()
    settings = settings_for(kafka, postgres, name, partitions=2)
    good = list(synthetic_log(200, seed=4, concurrent=5))
    originals = [junk(460_000), junk(ORIGINAL_MAX, b"{")]
    await ensure_topics(settings)
    await produce(settings, encoded(good[:100]) + [(b"big", original) for original in originals] + encoded(good[100:]))
    projector = Projector(settings)
    conn = await asyncpg.connect(postgres.dsn)
    try:
        await projector.start()
        await wait_for_async(lambda: applied_to_end(conn, settings), timeout=90,
                             message="projector got past the oversized records")
        assert await conn.fetchval(f'SELECT count(*) FROM "{name}".timeline') == len(good)
        letters = await dead_letters(settings)
        assert len(letters) == 2
        for letter, original in zip(letters, originals):
            assert_holds(letter, original)
            assert letter["truncated"] and letter["reason"].startswith("projector: ")
    finally:
        await projector.stop()
        await conn.close()


# --- a log that went back ------------------------------------------------------------------


async def test_a_log_that_came_back_empty_is_refused_then_rebuilt_from(own_kafka, postgres) -> None:
    """The broker loses its whole log under a running projector. Refusing (the default), it
    applies nothing of the new log; rebuilding, its read models then equal the new log,
    and the change feed says so with one `reset` change."""
    name = unique_name()
    settings = settings_for(own_kafka, postgres, name, partitions=3)
    await ensure_topics(settings)
    await produce(settings, encoded(synthetic_log(300, seed=21)))
    conn = await asyncpg.connect(postgres.dsn)
    projector = Projector(settings)
    try:
        await projector.start()
        await wait_for_async(lambda: applied_to_end(conn, settings), timeout=90, message="the first log applied")
        cluster_before = await conn.fetchval(f'SELECT cluster_id FROM "{name}".log_identity')
        assert cluster_before

        come_back_empty(own_kafka)
        await ensure_topics(settings)
        await wait_for_async(lambda: projector.log_problem, timeout=60, message="the projector noticing")
        newer = list(synthetic_log(120, seed=22))
        await produce(settings, encoded(newer))
        checks = projector.log_checks
        await wait_for_async(lambda: projector.log_checks >= checks + 2, timeout=30, message="two more checks")
        # Still the old read models, untouched: nothing of another log is mixed in.
        assert await conn.fetchval(f'SELECT count(*) FROM "{name}".timeline') == 300
        await projector.stop()

        rebuilding = settings.model_copy(update={"projector": settings.projector.model_copy(
            update={"on_log_reset": "rebuild"})})
        projector = Projector(rebuilding)
        await projector.start()
        # The stored offsets are past the new log's end until the read models are emptied.
        await wait_for_async(lambda: projector.resets, timeout=60, message="the read models emptied")
        await wait_for_async(lambda: applied_to_end(conn, settings), timeout=90, message="the new log applied")
        assert projector.resets == 1 and projector.log_problem is None
        assert await assert_read_models_match_log(conn, settings) == 120
        assert {r[0] for r in await conn.fetch(f'SELECT DISTINCT incident_id FROM "{name}".timeline')} == \
            {e.incident_id for e in newer}
        first = await conn.fetchrow(f'SELECT type, payload FROM "{name}".changes ORDER BY change_id LIMIT 1')
        assert first["type"] == "reset" and "went back" in json.loads(first["payload"])["reason"]
        assert await conn.fetchval(f'SELECT cluster_id FROM "{name}".log_identity') != cluster_before
        assert await conn.fetchval(f'SELECT epoch FROM "{name}".log_identity') == 2
    finally:
        await projector.stop()
        await conn.close()


# --- several projectors share the work ----------------------------------------------------


async def test_two_projectors_share_partitions_and_the_change_feed_stays_ordered(kafka, postgres) -> None:
    name = unique_name()
    settings = settings_for(kafka, postgres, name, partitions=6, batch_max=100)
    await ensure_topics(settings)
    log = list(synthetic_log(3000, seed=13, concurrent=60))
    conn = await asyncpg.connect(postgres.dsn)
    first, second = Projector(settings), Projector(settings)
    try:
        await first.start()
        await produce(settings, encoded(log[:1500], repeat_every=40))
        await second.start()  # joins while the first is busy: partitions move between them
        await produce(settings, encoded(log[1500:], repeat_every=40))
        await wait_for_async(lambda: applied_to_end(conn, settings), timeout=120,
                             message="both projectors together applied the log")
        assert await assert_read_models_match_log(conn, settings) == len(log)
        assert first.applied + second.applied == len(log)
        # Change ids follow commit order, so a reader resuming after any id misses nothing.
        ids = [r[0] for r in await conn.fetch(f'SELECT change_id FROM "{name}".changes ORDER BY change_id')]
        assert len(ids) == len(set(ids)) == len(log)
    finally:
        await first.stop()
        await second.stop()
        await conn.close()
