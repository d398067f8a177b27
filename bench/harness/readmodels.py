"""The log and read models of the projector and replay rows: a synthetic event log on
the events topic, the raw COPY baseline of the timeline rows it yields, and cleaning up
the schemas a run made."""

from __future__ import annotations

import argparse
import time

import asyncpg

from bench.harness.broker import preload
from projections import timeline
from projections.logged import LoggedEvent
from projections.rejects import decode
from projections.schema import migrate, quote_ident
from testing.synthetic import synthetic_log
from foundation.settings import Settings


def log_options(parser: argparse.ArgumentParser, events: int) -> None:
    """The options that shape the synthetic log: its size, partitions and interleaving."""
    parser.add_argument("--events", type=int, default=events)
    parser.add_argument("--partitions", type=int, default=6)
    parser.add_argument("--concurrent", type=int, default=200, help="incidents in flight in the synthetic log")


async def preload_log(settings: Settings, events: int, concurrent: int) -> tuple[list[bytes], float]:
    """`events` sealed events of `concurrent` incidents at a time, on the events topic;
    their values, and the seconds producing them took."""
    envelopes = synthetic_log(events, seed=1, concurrent=concurrent)
    records = [(str(e.incident_id).encode(), e.model_dump_json(by_alias=True).encode()) for e in envelopes]
    started = time.perf_counter()
    await preload(settings, "events", records)
    return [value for _, value in records], time.perf_counter() - started


async def copy_baseline(dsn: str, schema: str, values: list[bytes], batch: int, transactions: bool) -> dict:
    """COPY the timeline rows of `values`, prepared beforehand, `batch` rows at a time (each
    in its own transaction when `transactions`, as the projector commits its batches)."""
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
            if transactions:
                async with conn.transaction():
                    await conn.copy_records_to_table("timeline", schema_name=schema, records=rows[i:i + batch])
            else:
                await conn.copy_records_to_table("timeline", schema_name=schema, records=rows[i:i + batch])
        seconds = time.perf_counter() - started
    finally:
        await conn.close()
    return {"seconds": round(seconds, 3), "events_per_s": round(len(rows) / seconds, 1)}


async def drop_schemas(dsn: str, prefix: str) -> None:
    """Drop every schema whose name starts with `prefix`."""
    conn = await asyncpg.connect(dsn)
    try:
        names = [r["nspname"] for r in await conn.fetch(
            "SELECT nspname FROM pg_namespace WHERE starts_with(nspname, $1)", prefix)]
        for schema in names:
            await conn.execute(f"DROP SCHEMA {quote_ident(schema)} CASCADE")
    finally:
        await conn.close()
