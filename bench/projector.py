"""Projector throughput: events/s from the events topic into every read model.

Baseline, in the same run on the same servers: a raw asyncpg COPY of the same
timeline rows (no Kafka, no decoding, no other read model). Also reported: the
same batches applied straight from memory (decoding included, no Kafka), which
splits the projector's cost between the log and the database.

    uv run python bench/projector.py --events 50000

Starts its own Tansu and PostgreSQL unless --kafka / --postgres are given.
Prints one JSON object per line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import asyncpg
from aiokafka import AIOKafkaProducer

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from projections import timeline  # noqa: E402
from projections.apply import apply_batch  # noqa: E402
from projections.logged import LoggedEvent  # noqa: E402
from projections.rejects import decode  # noqa: E402
from projections.runner import Projector, tune_gc  # noqa: E402
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


async def projector_run(settings, total: int) -> dict:
    projector = Projector(settings)
    started = time.perf_counter()
    await projector.start()
    first = None
    while projector.applied < total:
        if first is None and projector.applied:
            first = time.perf_counter()
        await asyncio.sleep(0.005)
    done = time.perf_counter()
    await projector.stop()
    first = first or started
    # Steady state: from the first committed batch (group join and seek excluded).
    return {"seconds_total": round(done - started, 3), "seconds_after_first_batch": round(done - first, 3),
            "events_per_s": round(total / (done - first), 1),
            "events_per_s_including_startup": round(total / (done - started), 1)}


async def processes_run(settings, total: int, processes: int) -> dict:
    """`processes` copies of `python -m projections` in one consumer group, as deployed."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("WARROOM_")}
    env.update({
        "WARROOM_KAFKA__BOOTSTRAP": settings.kafka.bootstrap, "WARROOM_POSTGRES__DSN": settings.postgres.dsn,
        "WARROOM_POSTGRES__SCHEMA_NAME": settings.postgres.schema_name,
        "WARROOM_TOPICS__PREFIX": settings.topics.prefix,
        "WARROOM_PROJECTOR__GROUP_ID": settings.projector.group_id,
        "WARROOM_PROJECTOR__BATCH_MAX": str(settings.projector.batch_max),
        "WARROOM_LOG_LEVEL": "warning", "PYTHONPATH": str(ROOT),
    })
    children = [subprocess.Popen([sys.executable, "-m", "projections"], cwd=ROOT, env=env)
                for _ in range(processes)]
    conn = await asyncpg.connect(settings.postgres.dsn)
    query = (f"SELECT coalesce(sum(next_offset), 0) FROM {quote_ident(settings.postgres.schema_name)}"
             ".projection_offsets")
    try:
        started = time.perf_counter()
        first = None
        done = 0
        while done < total:
            await asyncio.sleep(0.02)
            try:
                done = await conn.fetchval(query)
            except asyncpg.UndefinedTableError:
                continue
            if done and first is None:
                first = time.perf_counter()
        finished = time.perf_counter()
    finally:
        for child in children:
            child.terminate()
        for child in children:
            child.wait(30)
        await conn.close()
    first = first or started
    return {"processes": processes, "seconds_total": round(finished - started, 3),
            "events_per_s": round(total / (finished - first), 1)}


async def in_memory_run(dsn: str, schema: str, values: list[bytes], batch: int) -> dict:
    conn = await asyncpg.connect(dsn)
    try:
        await migrate(conn, schema)
        started = time.perf_counter()
        for i in range(0, len(values), batch):
            chunk = [LoggedEvent(decode(v), 0, i + n, "bench") for n, v in enumerate(values[i:i + batch])]
            await apply_batch(conn, schema, chunk, {("bench", 0): i + len(chunk)})
        seconds = time.perf_counter() - started
    finally:
        await conn.close()
    return {"seconds": round(seconds, 3), "events_per_s": round(len(values) / seconds, 1)}


async def copy_baseline(dsn: str, schema: str, values: list[bytes], batch: int) -> dict:
    """COPY the timeline rows the projector writes, prepared beforehand, one transaction per batch."""
    rows = []
    for offset, value in enumerate(values):
        item = LoggedEvent(decode(value), 0, offset, "bench")
        e = item.event
        rows.append((e.incident_id, e.version, e.event_id, e.type, e.occurred_at, e.recorded_at,
                     e.actor.model_dump_json(), timeline.summarize(e), item.data_json,
                     0, offset))
    conn = await asyncpg.connect(dsn)
    try:
        await migrate(conn, schema)
        started = time.perf_counter()
        for i in range(0, len(rows), batch):
            async with conn.transaction():
                await conn.copy_records_to_table("timeline", schema_name=schema, records=rows[i:i + batch])
        seconds = time.perf_counter() - started
    finally:
        await conn.close()
    return {"seconds": round(seconds, 3), "events_per_s": round(len(rows) / seconds, 1)}


async def main(args: argparse.Namespace, bootstrap: str, dsn: str) -> None:
    name = f"bench_{uuid.uuid4().hex[:8]}"
    settings = load_settings(
        kafka={"bootstrap": bootstrap},
        postgres={"dsn": dsn, "schema_name": name},
        topics={"prefix": name, "partitions": args.partitions},
        projector={"group_id": f"{name}-projector", "batch_max": args.batch, "batch_wait_ms": args.batch_wait_ms},
        log_level="warning",
    )
    await ensure_topics(settings)
    tune_gc()  # as `warroom projector` does, so in-process numbers are the process's
    envelopes = list(synthetic_log(args.events, seed=1, concurrent=args.concurrent))
    records = [(str(e.incident_id).encode(), e.model_dump_json(by_alias=True).encode()) for e in envelopes]
    values = [v for _, v in records]
    started = time.perf_counter()
    await produce(bootstrap, settings.topics.name("events"), records)
    emit(bench="projector.setup", events=args.events, partitions=args.partitions, batch_max=args.batch,
         produce_seconds=round(time.perf_counter() - started, 3))

    copy = await copy_baseline(dsn, f"{name}_copy", values, args.batch)
    emit(bench="projector.baseline_copy", events=args.events, **copy)
    memory = await in_memory_run(dsn, f"{name}_mem", values, args.batch)
    emit(bench="projector.apply_from_memory", events=args.events, **memory)
    run = await projector_run(settings, args.events)
    emit(bench="projector", events=args.events, **run)
    emit(bench="projector.ratio", target_events_per_s=20000,
         projector_vs_copy=round(run["events_per_s"] / copy["events_per_s"], 3),
         apply_from_memory_vs_copy=round(memory["events_per_s"] / copy["events_per_s"], 3))
    schemas = [name, f"{name}_copy", f"{name}_mem"]
    if args.processes:
        scaled = settings.model_copy(update={
            "postgres": settings.postgres.model_copy(update={"schema_name": f"{name}_procs"}),
            "projector": settings.projector.model_copy(update={"group_id": f"{name}-procs"})})
        schemas.append(f"{name}_procs")
        procs = await processes_run(scaled, args.events, args.processes)
        emit(bench="projector.processes", events=args.events, **procs,
             processes_vs_copy=round(procs["events_per_s"] / copy["events_per_s"], 3))

    conn = await asyncpg.connect(dsn)
    try:
        for schema in schemas:
            await conn.execute(f"DROP SCHEMA {quote_ident(schema)} CASCADE")
    finally:
        await conn.close()


def cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--partitions", type=int, default=6)
    parser.add_argument("--batch", type=int, default=2000, help="projector.batch_max")
    parser.add_argument("--batch-wait-ms", type=int, default=20)
    parser.add_argument("--concurrent", type=int, default=200, help="incidents in flight in the synthetic log")
    parser.add_argument("--processes", type=int, default=0,
                        help="also run this many `python -m projections` processes in one group")
    parser.add_argument("--kafka", help="use this broker (host:port) instead of starting Tansu")
    parser.add_argument("--postgres", help="use this PostgreSQL DSN instead of starting one")
    parser.add_argument("--no-fsync", action="store_true", help="start PostgreSQL without fsync")
    args = parser.parse_args()

    from warroom.servers import start_postgres, start_tansu

    servers = []
    with tempfile.TemporaryDirectory(prefix="warroom-bench-") as tmp:
        try:
            bootstrap = args.kafka
            if not bootstrap:
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
