"""Correlation progress read model: each run, and each source's state within it.

A source is `pending` from the run's start, `running` once queried, then one of
the outcomes `succeeded|failed|no_data|unavailable|timed_out`, so a dashboard
can show at any moment what is still being waited for and what failed.

Like incidents, a batch is folded in memory over the touched rows and written
back with one statement per table.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from uuid import UUID

import asyncpg

from contracts import events as ev
from projections.logged import LoggedEvent, from_json, hypotheses_json
from projections.rows import column_arrays, Columns, qualified, upsert_statement

# The table's DDL, applied by `projections.schema`'s numbered migrations (never edited once applied).
# Migration 1.
CREATE_RUNS = """
CREATE TABLE IF NOT EXISTS {s}.correlation_runs (
    run_id uuid PRIMARY KEY,
    incident_id uuid NOT NULL,
    state text NOT NULL,
    outcome text,
    trigger text,
    sources jsonb NOT NULL,
    started_at timestamptz,
    completed_at timestamptz,
    hypotheses jsonb
);
CREATE INDEX IF NOT EXISTS correlation_runs_incident_idx ON {s}.correlation_runs (incident_id, started_at);
"""
# Migration 1.
CREATE_SOURCES = """
CREATE TABLE IF NOT EXISTS {s}.correlation_sources (
    run_id uuid NOT NULL,
    source text NOT NULL,
    state text NOT NULL,
    attempts int NOT NULL DEFAULT 0,
    duration_ms int,
    error text,
    queries jsonb,
    started_at timestamptz,
    completed_at timestamptz,
    PRIMARY KEY (run_id, source)
);
"""

Row = dict[str, Any]

RUN_COLUMNS: Columns = (("run_id", "uuid"), ("incident_id", "uuid"), ("state", "text"), ("outcome", "text"),
               ("trigger", "text"), ("sources", "jsonb"), ("started_at", "timestamptz"),
               ("completed_at", "timestamptz"), ("hypotheses", "jsonb"))
SOURCE_COLUMNS: Columns = (("run_id", "uuid"), ("source", "text"), ("state", "text"), ("attempts", "int"),
                  ("duration_ms", "int"), ("error", "text"), ("queries", "jsonb"),
                  ("started_at", "timestamptz"), ("completed_at", "timestamptz"))

SELECT_RUNS = "SELECT * FROM {s}.correlation_runs WHERE run_id = ANY($1::uuid[])"
SELECT_SOURCES = "SELECT * FROM {s}.correlation_sources WHERE run_id = ANY($1::uuid[])"


UPSERT_RUNS = upsert_statement("correlation_runs", RUN_COLUMNS, ("run_id",))
UPSERT_SOURCES = upsert_statement("correlation_sources", SOURCE_COLUMNS, ("run_id", "source"))

CORRELATION_EVENTS = frozenset(cls.event_type for cls in (
    ev.CorrelationStarted, ev.CorrelationSourceStarted, ev.CorrelationSourceCompleted, ev.CorrelationCompleted))


def _source(run_id: UUID, name: str) -> Row:
    return {"run_id": run_id, "source": name, "state": "pending", "attempts": 0, "duration_ms": None,
            "error": None, "queries": None, "started_at": None, "completed_at": None}


def evolve(runs: dict[UUID, Row], sources: dict[tuple[UUID, str], Row], item: LoggedEvent) -> None:
    """Apply one correlation event to the `runs` and `sources` rows (in place)."""
    e, d = item.event, item.event.data
    if e.type == "CorrelationStarted":
        if d.run_id not in runs:
            runs[d.run_id] = {"run_id": d.run_id, "incident_id": e.incident_id, "state": "running",
                              "outcome": None, "trigger": d.trigger,
                              "sources": {name: "pending" for name in d.sources},
                              "started_at": e.occurred_at, "completed_at": None, "hypotheses": None}
            for name in d.sources:
                sources.setdefault((d.run_id, name), _source(d.run_id, name))
        return
    run = runs.get(d.run_id)
    if e.type == "CorrelationCompleted":
        if run is not None:
            run.update(state="completed", outcome=d.outcome, completed_at=e.occurred_at,
                       hypotheses=hypotheses_json(d.hypotheses))
        return
    source = sources.setdefault((d.run_id, d.source), _source(d.run_id, d.source))
    if e.type == "CorrelationSourceStarted":
        source.update(state="running", started_at=e.occurred_at)
    else:
        source.update(state=d.outcome, attempts=d.attempts, duration_ms=d.duration_ms, error=d.error,
                      queries=list(d.queries), completed_at=e.occurred_at)
    if run is not None:
        run["sources"] = {**run["sources"], d.source: source["state"]}


async def apply_batch(conn: asyncpg.Connection, schema: str, events: Sequence[LoggedEvent]) -> None:
    """Apply the correlation events among `events`, in log order."""
    relevant = [i for i in events if i.event.type in CORRELATION_EVENTS]
    if not relevant:
        return
    run_ids = list({i.event.data.run_id for i in relevant})
    runs: dict[UUID, Row] = {}
    for record in await conn.fetch(qualified(schema, SELECT_RUNS), run_ids):
        runs[record["run_id"]] = dict(record, sources=from_json(record["sources"]),
                                      hypotheses=from_json(record["hypotheses"]))
    sources: dict[tuple[UUID, str], Row] = {}
    if any(i.event.type != "CorrelationStarted" for i in relevant):
        for record in await conn.fetch(qualified(schema, SELECT_SOURCES), run_ids):
            sources[(record["run_id"], record["source"])] = dict(record, queries=from_json(record["queries"]))
    for item in relevant:
        evolve(runs, sources, item)
    if runs:
        await conn.execute(qualified(schema, UPSERT_RUNS), *column_arrays(list(runs.values()), RUN_COLUMNS))
    if sources:
        await conn.execute(qualified(schema, UPSERT_SOURCES), *column_arrays(list(sources.values()), SOURCE_COLUMNS))
