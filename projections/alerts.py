"""Alerts read model: the alerts attached to each incident and whether they still fire."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from uuid import UUID

import asyncpg

from contracts.events import AlertAttached, AlertResolved
from projections.logged import LoggedEvent, from_json
from projections.rows import column_arrays, Columns, qualified, upsert_statement

# The table's DDL, applied by `projections.schema`'s numbered migrations (never edited once applied).
# Migration 1.
CREATE = """
CREATE TABLE IF NOT EXISTS {s}.alerts (
    incident_id uuid NOT NULL,
    fingerprint text NOT NULL,
    alertname text,
    status text NOT NULL,
    labels jsonb NOT NULL,
    annotations jsonb NOT NULL,
    first_seen timestamptz,
    last_seen timestamptz,
    resolved_at timestamptz,
    PRIMARY KEY (incident_id, fingerprint)
);
"""

Row = dict[str, Any]
Key = tuple[UUID, str]

COLUMNS: Columns = (("incident_id", "uuid"), ("fingerprint", "text"), ("alertname", "text"),
                    ("status", "text"), ("labels", "jsonb"), ("annotations", "jsonb"),
                    ("first_seen", "timestamptz"), ("last_seen", "timestamptz"),
                    ("resolved_at", "timestamptz"))

SELECT = """
SELECT a.* FROM {s}.alerts a
JOIN unnest($1::uuid[], $2::text[]) AS k(incident_id, fingerprint) USING (incident_id, fingerprint)
"""
ALERT_EVENTS = frozenset({AlertAttached.event_type, AlertResolved.event_type})
UPSERT = upsert_statement("alerts", COLUMNS, ("incident_id", "fingerprint"))


def evolve(row: Row | None, item: LoggedEvent) -> Row:
    """The alert row after an `AlertAttached` or `AlertResolved`.

    An alert that fires again after resolving keeps its first_seen; resolving an
    alert the log never attached still leaves a row, so nothing goes unseen.
    """
    e, d = item.event, item.event.data
    if row is None:
        row = {"incident_id": e.incident_id, "fingerprint": d.fingerprint, "alertname": None,
               "status": "firing", "labels": {}, "annotations": {}, "first_seen": None,
               "last_seen": None, "resolved_at": None}
    else:
        row = dict(row)
    if e.type == "AlertAttached":
        first = row["first_seen"]
        row.update(alertname=d.alertname or row["alertname"], status="firing", labels=dict(d.labels),
                   annotations=dict(d.annotations), resolved_at=None,
                   first_seen=d.starts_at if first is None else min(first, d.starts_at),
                   last_seen=_latest(row["last_seen"], e.occurred_at))
    else:
        row.update(status="resolved", resolved_at=d.ends_at, last_seen=_latest(row["last_seen"], d.ends_at))
    return row


def _latest(a: Any, b: Any) -> Any:
    return b if a is None else max(a, b)


async def apply_batch(conn: asyncpg.Connection, schema: str, events: Sequence[LoggedEvent]) -> None:
    """Apply `AlertAttached` / `AlertResolved` among `events`, in log order."""
    relevant = [i for i in events if i.event.type in ALERT_EVENTS]
    if not relevant:
        return
    keys = list({(i.event.incident_id, i.event.data.fingerprint) for i in relevant})
    rows: dict[Key, Row] = {}
    for record in await conn.fetch(qualified(schema, SELECT), [k[0] for k in keys], [k[1] for k in keys]):
        rows[(record["incident_id"], record["fingerprint"])] = dict(
            record, labels=from_json(record["labels"]), annotations=from_json(record["annotations"]))
    for item in relevant:
        key = (item.event.incident_id, item.event.data.fingerprint)
        rows[key] = evolve(rows.get(key), item)
    await conn.execute(qualified(schema, UPSERT), *column_arrays(rows.values(), COLUMNS))
