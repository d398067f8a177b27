"""Replay rate: events/s rebuilt from the events topic into a fresh schema, verified
(SPEC §12, target >= 50,000 events/s).

Baseline, in the same run on the same servers: a raw asyncpg COPY of the same timeline
rows (prepared beforehand, no Kafka, no decoding, no other read model). Also reported,
to show where the time goes: reading the topic with aiokafka alone (no decoding), and
one process decoding and folding the records in memory (no Kafka, no PostgreSQL).

The replay is timed once per `--jobs` value: the first without a live schema (it creates
one), the next with one (the full path: rebuild, catch up, verify, switch). `events_per_s`
counts from offset 0 to the end of the rebuild (startup of the rebuilding processes
excluded, verification included, since each record is folded and checked as it is read);
`total_seconds` is the whole command. The row takes the best of them.

    uv run python -m bench.replay --kafka apache --events 100000

Prints one JSON object per line, the last one the row for `bench.report`.
"""

from __future__ import annotations

import os
import time

from aiokafka.structs import ConsumerRecord

from bench.harness.broker import bench_settings, fresh_prefix
from bench.harness.cli import parser_for, run
from bench.harness.measure import emit, emit_row
from bench.harness.readmodels import copy_baseline, drop_schemas, log_options, preload_log
from projections.replay.decoding import Decoder
from projections.replay.expected import Expected
from projections.replay.log_reader import events_consumer, log_end, read_ranges
from projections.replay.rebuild import Rebuild
from projections.replay.run import replay
from foundation.event_loop import tune_gc

COPY = "raw asyncpg COPY of the same rows"


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
    expected.digests(rebuild)
    seconds = time.perf_counter() - started
    return {"verify": verify, "seconds": round(seconds, 3), "events_per_s": round(len(values) / seconds, 1)}


async def timed_replay(settings, jobs: int) -> dict:
    outcome = await replay(settings, jobs=jobs)
    if not (outcome.valid and outcome.switched):
        raise RuntimeError(f"replay did not verify and switch: {outcome.mismatches}")
    return {"jobs": outcome.jobs, "records": outcome.records, "rebuild_seconds": round(outcome.rebuild_seconds, 3),
            "events_per_s": round(outcome.rate, 1), "total_seconds": round(outcome.total_seconds, 3),
            "with_live_schema": outcome.old is not None}


async def main(args, found, work, load) -> None:
    name = fresh_prefix("replay")
    settings = bench_settings(found.bootstrap, name, postgres={"dsn": found.dsn, "schema_name": name},
                              topics={"partitions": args.partitions})
    tune_gc()  # as `warroom replay` does
    values, produce_s = await preload_log(settings, args.events, args.concurrent)
    emit(bench="replay.setup", events=args.events, partitions=args.partitions, cores=os.cpu_count(),
         produce_seconds=round(produce_s, 3))
    try:
        copy = await copy_baseline(found.dsn, f"{name}_copy", values, 20_000, transactions=False)
        emit(bench="replay.baseline_copy", events=args.events, **copy)
        emit(bench="replay.kafka_read", **(await kafka_read(settings)))
        for verify in (True, False):
            emit(bench="replay.fold_in_memory", events=args.events, **fold_in_memory(values, verify))
        runs = []
        for jobs in args.jobs:
            runs.append(await timed_replay(settings, jobs))
            emit(bench="replay", events=args.events, **runs[-1])
        best = max(runs, key=lambda r: r["events_per_s"])
        emit_row("replay", load, {"throughput": best["events_per_s"]}, {COPY: {"throughput": copy["events_per_s"]}},
                 kafka=found.kafka, events=args.events, partitions=args.partitions, best_jobs=best["jobs"],
                 events_per_s_by_jobs={str(r["jobs"]): r["events_per_s"] for r in runs})
    finally:
        await drop_schemas(found.dsn, name)


if __name__ == "__main__":
    parser = parser_for(__doc__, postgres=True)
    log_options(parser, events=100_000)
    parser.add_argument("--jobs", type=int, nargs="+", default=[1, 2],
                        help="rebuilding processes; each value is one timed replay (the first creates the schema)")
    run(main, parser.parse_args(), postgres=True)
