"""Replay rate: events/s rebuilt from the events topic into a fresh schema, verified.

Baseline, in the same run on the same servers: a raw asyncpg COPY of the same timeline
rows (prepared beforehand, no Kafka, no decoding, no other read model). Also reported,
to show where the time goes: reading the topic with aiokafka alone (no decoding), and
one process decoding and folding the records in memory (no Kafka, no PostgreSQL).

The replay is timed twice: without a live schema (it creates one) and with one (the
full path: rebuild, catch up, verify, switch). `events_per_s` counts from offset 0 to
the end of the rebuild (startup of the rebuilding processes excluded, verification
included, since each record is folded and checked as it is read); `total_seconds` is
the whole command.

    uv run python bench/replay.py --events 100000

Starts its own broker (Tansu; `--broker apache` for Apache Kafka) and PostgreSQL
unless --kafka / --postgres are given. Prints one JSON object per line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path

import asyncpg
from aiokafka import AIOKafkaProducer
from aiokafka.structs import ConsumerRecord

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from projections import timeline  # noqa: E402
from projections.decoding import Decoder  # noqa: E402
from projections.expected import Expected  # noqa: E402
from projections.log_reader import events_consumer, log_end, read_ranges  # noqa: E402
from projections.logged import LoggedEvent  # noqa: E402
from projections.rebuild import Rebuild  # noqa: E402
from projections.rejects import decode  # noqa: E402
from projections.replay import replay  # noqa: E402
from projections.runner import tune_gc  # noqa: E402
from projections.schema import migrate, quote_ident  # noqa: E402
from projections.synthetic import synthetic_log  # noqa: E402
from warroom.settings import load_settings  # noqa: E402
from warroom.topics import ensure_topics  # noqa: E402


def emit(**fields: object) -> None:
    print(json.dumps(fields), flush=True)


async def produce(bootstrap: str, topic: str, records: list[tuple[bytes, bytes]]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=False, acks="all",
                                linger_ms=10, max_batch_size=512 * 1024)
    await producer.start()
    try:
        futures = [await producer.send(topic, value, key=key) for key, value in records]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


async def copy_baseline(dsn: str, schema: str, values: list[bytes], batch: int) -> dict:
    """COPY the timeline rows a replay writes, prepared beforehand, in chunks like the replay's."""
    rows = []
    for offset, value in enumerate(values):
        item = LoggedEvent(decode(value), 0, offset, "bench")
        e = item.event
        rows.append((e.incident_id, e.version, e.event_id, e.type, e.occurred_at, e.recorded_at,
                     e.actor.model_dump_json(), timeline.summarize(e), item.data_json, 0, offset))
    conn = await asyncpg.connect(dsn)
    try:
        await migrate(conn, schema)
        started = time.perf_counter()
        for i in range(0, len(rows), batch):
            await conn.copy_records_to_table("timeline", schema_name=schema, records=rows[i:i + batch])
        seconds = time.perf_counter() - started
    finally:
        await conn.close()
    return {"seconds": round(seconds, 3), "events_per_s": round(len(rows) / seconds, 1)}


async def kafka_read(settings) -> dict:
    """aiokafka alone: every record of the topic, nothing done with it."""
    topic = settings.topics.name("events")
    async with events_consumer(settings) as consumer:
        ends = await log_end(consumer, topic)
        started = time.perf_counter()
        count = 0
        async for batch in read_ranges(consumer, topic, {}, ends):
            count += len(batch)
        seconds = time.perf_counter() - started
    return {"records": count, "seconds": round(seconds, 3), "records_per_s": round(count / seconds, 1)}


def fold_in_memory(values: list[bytes], verify: bool = True) -> dict:
    """One process decoding and folding into rows, and (`verify`) into the independent
    digests; no I/O."""
    records = [ConsumerRecord("bench", 0, offset, 0, 0, None, value, None, 0, len(value), [])
               for offset, value in enumerate(values)]
    decoder, rebuild, expected = Decoder(), Rebuild("bench", "bench"), Expected("bench")
    started = time.perf_counter()
    for record in records:
        event = decoder.decode(record.value)
        rebuild.add(record, event)
        if verify:
            expected.add(0, record.offset, event)
    expected.digests()
    seconds = time.perf_counter() - started
    return {"verify": verify, "seconds": round(seconds, 3), "events_per_s": round(len(values) / seconds, 1)}


async def timed_replay(settings, jobs: int) -> dict:
    outcome = await replay(settings, jobs=jobs)
    assert outcome.valid and outcome.switched, outcome.mismatches
    return {"jobs": outcome.jobs, "records": outcome.records, "rebuild_seconds": round(outcome.rebuild_seconds, 3),
            "events_per_s": round(outcome.rate, 1), "total_seconds": round(outcome.total_seconds, 3),
            "with_live_schema": outcome.old is not None}


async def main(args: argparse.Namespace, bootstrap: str, dsn: str) -> None:
    name = f"bench_{uuid.uuid4().hex[:8]}"
    settings = load_settings(
        kafka={"bootstrap": bootstrap},
        postgres={"dsn": dsn, "schema_name": name},
        topics={"prefix": name, "partitions": args.partitions},
        log_level="warning",
    )
    await ensure_topics(settings)
    tune_gc()  # as `warroom replay` does
    envelopes = list(synthetic_log(args.events, seed=1, concurrent=args.concurrent))
    records = [(str(e.incident_id).encode(), e.model_dump_json(by_alias=True).encode()) for e in envelopes]
    values = [v for _, v in records]
    started = time.perf_counter()
    await produce(bootstrap, settings.topics.name("events"), records)
    emit(bench="replay.setup", events=args.events, partitions=args.partitions, cores=os.cpu_count(),
         load_average=[round(x, 2) for x in os.getloadavg()], produce_seconds=round(time.perf_counter() - started, 3))

    copy = await copy_baseline(dsn, f"{name}_copy", values, 20_000)
    emit(bench="replay.baseline_copy", events=args.events, **copy)
    emit(bench="replay.kafka_read", **(await kafka_read(settings)))
    for verify in (True, False):
        emit(bench="replay.fold_in_memory", events=args.events, **fold_in_memory(values, verify))
    runs = []
    for jobs in args.jobs:
        run = await timed_replay(settings, jobs)
        runs.append(run)
        emit(bench="replay", events=args.events, **run)
    best = max(runs, key=lambda r: r["events_per_s"])
    emit(bench="replay.ratio", target_events_per_s=50_000, best_events_per_s=best["events_per_s"],
         best_jobs=best["jobs"], replay_vs_copy=round(best["events_per_s"] / copy["events_per_s"], 3))

    conn = await asyncpg.connect(dsn)
    try:
        names = [r["nspname"] for r in await conn.fetch(
            "SELECT nspname FROM pg_namespace WHERE nspname LIKE $1", f"{name}%")]
        for schema in names:
            await conn.execute(f"DROP SCHEMA {quote_ident(schema)} CASCADE")
    finally:
        await conn.close()


def cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--partitions", type=int, default=6)
    parser.add_argument("--concurrent", type=int, default=200, help="incidents in flight in the synthetic log")
    parser.add_argument("--jobs", type=int, nargs="+", default=[1, 2],
                        help="rebuilding processes; each value is one timed replay (the first creates the schema)")
    parser.add_argument("--broker", choices=("tansu", "apache"), default="tansu")
    parser.add_argument("--kafka", help="use this broker (host:port) instead of starting one")
    parser.add_argument("--postgres", help="use this PostgreSQL DSN instead of starting one")
    parser.add_argument("--no-fsync", action="store_true", help="start PostgreSQL without fsync")
    args = parser.parse_args()

    from warroom.servers import default_cache_dir, ensure_kafka_jars, start_apache_kafka, start_postgres, start_tansu

    servers = []
    with tempfile.TemporaryDirectory(prefix="warroom-bench-") as tmp:
        try:
            bootstrap = args.kafka
            if not bootstrap:
                if args.broker == "apache":
                    servers.append(start_apache_kafka(Path(tmp) / "kafka",
                                                      jars_dir=ensure_kafka_jars(default_cache_dir())))
                else:
                    servers.append(start_tansu(Path(tmp) / "kafka"))
                bootstrap = servers[-1].bootstrap
            dsn = args.postgres
            if not dsn:
                servers.append(start_postgres(Path(tmp) / "postgres", durable=not args.no_fsync))
                dsn = servers[-1].dsn
            asyncio.run(main(args, bootstrap, dsn))
        finally:
            for server in reversed(servers):
                server.stop()


if __name__ == "__main__":
    cli()
