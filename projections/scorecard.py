"""Scorecard read model: did correlation name the cause people confirmed, and how soon (SPEC §14).

One row per incident that has a completed correlation run or a confirmed root cause. It
keeps what each completed run suspected (`runs`: the services its hypotheses name, in
log order) and the confirmed cause, and scores them:

- **The run that counts** is the latest `CorrelationCompleted` that comes before the
  current `RootCauseConfirmed` in the incident's log (a lower version): what correlation
  proposed by the time the person confirmed. Runs that complete afterwards do not change
  it; a superseding confirmation is scored against the runs before *it*.
- **`rank`**: the confirmed service's place among the distinct services that run's
  hypotheses name, best first (null when none names it). Top-1 is rank 1, top-3 rank
  ≤ 3. A confirmation with no completed run before it is a miss (rank null).
- **`first_named_at`**: when the first run (of any, before or after the confirmation)
  whose hypotheses name the service completed; `time_to_first_hypothesis_s` counts from
  the incident's opening to then, and is null while no run has named it.

A hypothesis names a service by its `service` field (the typed `contracts.hypotheses.
Hypothesis`); the free-form hypotheses of older events carry none and never match.

`evolve` is pure and shared by the projector (`apply_batch`), the rebuild and the
postmortem, so all three say the same thing.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg

from projections.incidents import seconds_between
from projections.logged import LoggedEvent, from_json, iso
from projections.rows import column_arrays, Columns, qualified, upsert_statement

# The table's DDL, applied by `projections.schema`'s numbered migrations (never edited once applied).
# Migration 2.
CREATE = """
CREATE TABLE IF NOT EXISTS {s}.scorecard (
    incident_id uuid PRIMARY KEY,
    opened_at timestamptz,
    runs jsonb NOT NULL,
    service text,
    signal text,
    note text,
    confirmed_by text,
    confirmed_at timestamptz,
    confirmed_version int,
    run_id uuid,
    rank int,
    top1 bool,
    top3 bool,
    first_named_run_id uuid,
    first_named_at timestamptz,
    time_to_first_hypothesis_s double precision
);
CREATE INDEX IF NOT EXISTS scorecard_confirmed_idx ON {s}.scorecard (confirmed_at DESC, incident_id)
    WHERE service IS NOT NULL;
"""

Row = dict[str, Any]

COLUMNS: Columns = (
    ("incident_id", "uuid"), ("opened_at", "timestamptz"), ("runs", "jsonb"),
    ("service", "text"), ("signal", "text"), ("note", "text"), ("confirmed_by", "text"),
    ("confirmed_at", "timestamptz"), ("confirmed_version", "int"),
    ("run_id", "uuid"), ("rank", "int"), ("top1", "bool"), ("top3", "bool"),
    ("first_named_run_id", "uuid"), ("first_named_at", "timestamptz"),
    ("time_to_first_hypothesis_s", "float8"),
)
SCORED_EVENTS = frozenset({"CorrelationCompleted", "RootCauseConfirmed"})
TOP = 3

SELECT = "SELECT * FROM {s}.scorecard WHERE incident_id = ANY($1::uuid[])"
UPSERT = upsert_statement("scorecard", COLUMNS, ("incident_id",))


def field_of(hypothesis: Any, name: str) -> Any:
    """A hypothesis's field, whether it is a typed model or a free-form dict of an older event."""
    if isinstance(hypothesis, dict):
        return hypothesis.get(name)
    return getattr(hypothesis, name, None)


def suspects(hypotheses: Iterable[Any]) -> list[str]:
    """The distinct services `hypotheses` name, best ranked first (by `rank`, then list order)."""
    def order(item: tuple[int, Any]) -> tuple[float, int]:
        rank = field_of(item[1], "rank")
        valid = isinstance(rank, (int, float)) and not isinstance(rank, bool) and math.isfinite(rank)
        return (rank if valid else math.inf, item[0])

    named: list[str] = []
    for _, hypothesis in sorted(enumerate(hypotheses), key=order):
        service = field_of(hypothesis, "service")
        if isinstance(service, str) and service and service not in named:
            named.append(service)
    return named


def _new(incident_id: UUID, opened_at: datetime | None) -> Row:
    row: Row = {name: None for name, _ in COLUMNS}
    row.update(incident_id=incident_id, opened_at=opened_at, runs=[])
    return row


def evolve(row: Row | None, event: Any, opened_at: datetime | None) -> Row | None:
    """The scorecard row after `event` (`row` is not modified); `opened_at` is the
    incident's opening. Events that do not score leave the row as it was."""
    if event.type not in SCORED_EVENTS:
        return row
    d = event.data
    row = dict(row) if row is not None else _new(event.incident_id, opened_at)
    if event.type == "CorrelationCompleted":
        row["runs"] = [*row["runs"], {"run_id": str(d.run_id), "version": event.version,
                                      "completed_at": iso(event.occurred_at), "suspects": suspects(d.hypotheses)}]
    else:
        row.update(service=d.service, signal=d.signal, note=d.note, confirmed_by=d.by,
                   confirmed_at=event.occurred_at, confirmed_version=event.version)
    return score(row)


def score(row: Row) -> Row:
    """`row` with its scores computed from its runs and confirmation (module docstring)."""
    service = row["service"]
    if service is None:
        return {**row, "run_id": None, "rank": None, "top1": None, "top3": None, "first_named_run_id": None,
                "first_named_at": None, "time_to_first_hypothesis_s": None}
    before = [run for run in row["runs"] if run["version"] < row["confirmed_version"]]
    counted = before[-1] if before else None
    rank = counted["suspects"].index(service) + 1 if counted and service in counted["suspects"] else None
    first = next((run for run in row["runs"] if service in run["suspects"]), None)
    first_at = datetime.fromisoformat(first["completed_at"]) if first else None
    return {**row, "run_id": UUID(counted["run_id"]) if counted else None, "rank": rank,
            "top1": rank == 1, "top3": rank is not None and rank <= TOP,
            "first_named_run_id": UUID(first["run_id"]) if first else None, "first_named_at": first_at,
            "time_to_first_hypothesis_s": seconds_between(row["opened_at"], first_at)}


async def load(conn: asyncpg.Connection, schema: str, ids: Sequence[UUID]) -> dict[UUID, Row]:
    """The current rows of incidents `ids` (missing ones are absent)."""
    return {record["incident_id"]: dict(record, runs=from_json(record["runs"]))
            for record in await conn.fetch(qualified(schema, SELECT), list(ids))}


async def apply_batch(conn: asyncpg.Connection, schema: str, events: Sequence[LoggedEvent],
                      incidents_after: Sequence[dict[str, Any] | None]) -> None:
    """Score the runs and confirmations among `events` (new ones, in log order);
    `incidents_after` is the incident row after each event (aligned), for its opening."""
    relevant = [(item, incident) for item, incident in zip(events, incidents_after)
                if item.event.type in SCORED_EVENTS and incident is not None]
    if not relevant:
        return
    rows = await load(conn, schema, list({item.event.incident_id for item, _ in relevant}))
    for item, incident in relevant:
        key = item.event.incident_id
        rows[key] = evolve(rows.get(key), item.event, incident["opened_at"])  # type: ignore[assignment]
    await conn.execute(qualified(schema, UPSERT), *column_arrays(rows.values(), COLUMNS))
