"""Notifications read model: every delivery attempt and escalation on an incident's log,
one row per event (`GET /v1/incidents/{id}/notifications`)."""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg

from projections.logged import LoggedEvent
from projections.rows import qualified

# The table's DDL, applied by `projections.schema`'s numbered migrations (never edited once applied).
# Migration 5.
CREATE = """
CREATE TABLE IF NOT EXISTS {s}.notifications (
    incident_id uuid NOT NULL,
    version int NOT NULL,
    type text NOT NULL,
    notification_id uuid,
    receiver text,
    kind text,
    attempt int,
    status int,
    level int NOT NULL,
    trigger text NOT NULL,
    error text,
    will_retry bool,
    receivers text[],
    occurred_at timestamptz NOT NULL,
    PRIMARY KEY (incident_id, version)
);
"""

NOTIFICATION_EVENTS = frozenset({"NotificationSent", "NotificationFailed", "Escalated"})
COLUMNS = ("incident_id", "version", "type", "notification_id", "receiver", "kind", "attempt", "status",
           "level", "trigger", "error", "will_retry", "receivers", "occurred_at")

INSERT = """
INSERT INTO {s}.notifications (incident_id, version, type, notification_id, receiver, kind, attempt, status,
                               level, trigger, error, will_retry, receivers, occurred_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)
ON CONFLICT (incident_id, version) DO NOTHING
"""


def row(item: LoggedEvent) -> tuple | None:
    """The row an event makes, in `COLUMNS` order; None for other events."""
    e, d = item.event, item.event.data
    if e.type not in NOTIFICATION_EVENTS:
        return None
    if e.type == "Escalated":
        return (e.incident_id, e.version, e.type, None, None, None, None, None, d.level, "escalation", None, None,
                list(d.receivers), e.occurred_at)
    return (e.incident_id, e.version, e.type, d.notification_id, d.receiver, d.kind, d.attempt, d.status, d.level,
            d.trigger, getattr(d, "error", None), getattr(d, "will_retry", None), None, e.occurred_at)


async def apply_batch(conn: asyncpg.Connection, schema: str, events: Sequence[LoggedEvent]) -> None:
    """Record every notification event among `events`."""
    rows = [r for r in map(row, events) if r is not None]
    if rows:
        await conn.executemany(qualified(schema, INSERT), rows)
