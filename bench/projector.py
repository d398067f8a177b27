"""Projector throughput: events/s from the events topic into every read model
(SPEC §12, target >= 20,000 events/s).

Baseline, in the same run on the same servers: a raw asyncpg COPY of the same
timeline rows (no Kafka, no decoding, no other read model). Also reported: the
same batches applied straight from memory (decoding included, no Kafka), which
splits the projector's cost between the log and the database.

    uv run python -m bench.projector --kafka apache --events 50000

Prints one JSON object per line, the last one the row for `bench.report`.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time

import asyncpg

from bench.harness.broker import bench_settings, fresh_prefix
from bench.harness.cli import parser_for, run
from bench.harness.measure import emit, emit_row
from bench.harness.readmodels import copy_baseline, drop_schemas, log_options, preload_log
from bench.harness.servers import ROOT
from projections.apply import apply_batch
from projections.logged import LoggedEvent
from projections.rejects import decode
from foundation.event_loop import tune_gc
from projections.runner import Projector
from projections.schema import migrate, quote_ident

COPY = "raw asyncpg COPY of the same rows"


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
        "WARROOM_LOG_LEVEL": "warning",
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


async def main(args, found, work, load) -> None:
    name = fresh_prefix("projector")
    settings = bench_settings(
        found.bootstrap, name, postgres={"dsn": found.dsn, "schema_name": name}, topics={"partitions": args.partitions},
        projector={"group_id": f"{name}-projector", "batch_max": args.batch, "batch_wait_ms": args.batch_wait_ms})
    tune_gc()  # as `warroom projector` does, so in-process numbers are the process's
    values, produce_s = await preload_log(settings, args.events, args.concurrent)
    emit(bench="projector.setup", events=args.events, partitions=args.partitions, batch_max=args.batch,
         produce_seconds=round(produce_s, 3))
    try:
        copy = await copy_baseline(found.dsn, f"{name}_copy", values, args.batch, transactions=True)
        emit(bench="projector.baseline_copy", events=args.events, **copy)
        memory = await in_memory_run(found.dsn, f"{name}_mem", values, args.batch)
        emit(bench="projector.apply_from_memory", events=args.events, **memory)
        projected = await projector_run(settings, args.events)
        emit(bench="projector", events=args.events, **projected)
        scaled = None
        if args.processes:
            scaled = await processes_run(settings.model_copy(update={
                "postgres": settings.postgres.model_copy(update={"schema_name": f"{name}_procs"}),
                "projector": settings.projector.model_copy(update={"group_id": f"{name}-procs"})}),
                args.events, args.processes)
            emit(bench="projector.processes", events=args.events, **scaled)
        emit_row("projector", load, {"throughput": projected["events_per_s"]}, {COPY: {"throughput": copy["events_per_s"]}},
                 kafka=found.kafka, events=args.events, partitions=args.partitions, batch_max=args.batch,
                 processes=1, apply_from_memory_events_per_s=memory["events_per_s"],
                 **({f"{args.processes}_processes_events_per_s": scaled["events_per_s"]} if scaled else {}))
    finally:
        await drop_schemas(found.dsn, name)


if __name__ == "__main__":
    parser = parser_for(__doc__, postgres=True)
    log_options(parser, events=50_000)
    parser.add_argument("--batch", type=int, default=2000, help="projector.batch_max")
    parser.add_argument("--batch-wait-ms", type=int, default=20)
    parser.add_argument("--processes", type=int, default=0,
                        help="also run this many `python -m projections` processes in one group")
    run(main, parser.parse_args(), postgres=True)
