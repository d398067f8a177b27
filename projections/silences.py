"""Silences read model: each silence and maintenance window with what it swallowed
(`GET /v1/silences`), from the events of their own streams (SPEC §15)."""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg

from contracts.events import SILENCE_EVENT_TYPES
from projections.logged import LoggedEvent, to_json
from projections.rows import qualified

# The tables' DDL, applied by `projections.schema`'s numbered migrations (never edited once applied).
# Migration 6.
CREATE = """
CREATE TABLE IF NOT EXISTS {s}.silences (
    silence_id uuid PRIMARY KEY,
    matchers jsonb NOT NULL,
    starts_at timestamptz,
    ends_at timestamptz,
    comment text,
    window_name text,
    created_by text,
    created_at timestamptz,
    expired_at timestamptz,
    expired_by text,
    swallowed int NOT NULL DEFAULT 0,
    last_swallowed_at timestamptz,
    version int NOT NULL
);
CREATE INDEX IF NOT EXISTS silences_ends_idx ON {s}.silences (ends_at DESC, silence_id);
CREATE TABLE IF NOT EXISTS {s}.silenced_alerts (
    silence_id uuid NOT NULL,
    version int NOT NULL,
    fingerprint text NOT NULL,
    alertname text,
    labels jsonb NOT NULL,
    starts_at timestamptz NOT NULL,
    silenced_at timestamptz NOT NULL,
    PRIMARY KEY (silence_id, version)
);
"""

CREATED = """
INSERT INTO {s}.silences (silence_id, matchers, starts_at, ends_at, comment, created_by, created_at, version)
VALUES ($1, $2::jsonb, $3, $4, $5, $6, $7, $8)
ON CONFLICT (silence_id) DO NOTHING
"""
SWALLOWED = """
WITH alert AS (
    INSERT INTO {s}.silenced_alerts (silence_id, version, fingerprint, alertname, labels, starts_at, silenced_at)
    VALUES ($1, $2, $3, $4, $5::jsonb, $6, $7)
    ON CONFLICT (silence_id, version) DO NOTHING
    RETURNING silence_id
)
INSERT INTO {s}.silences AS s (silence_id, matchers, window_name, swallowed, last_swallowed_at, version)
SELECT silence_id, '[]'::jsonb, $8, 1, $7, $2 FROM alert
ON CONFLICT (silence_id) DO UPDATE
SET swallowed = s.swallowed + 1,
    last_swallowed_at = greatest(s.last_swallowed_at, excluded.last_swallowed_at),
    version = greatest(s.version, excluded.version)
"""
EXPIRED = """
UPDATE {s}.silences SET expired_at = $3, expired_by = $4, version = greatest(version, $2)
WHERE silence_id = $1 AND expired_at IS NULL
"""


async def apply_batch(conn: asyncpg.Connection, schema: str, events: Sequence[LoggedEvent]) -> None:
    """Fold the silence events among `events` (new ones, in log order)."""
    for item in events:
        e, d = item.event, item.event.data
        if e.type not in SILENCE_EVENT_TYPES:
            continue
        if e.type == "SilenceCreated":
            await conn.execute(qualified(schema, CREATED), e.incident_id,
                               to_json([m.model_dump() for m in d.matchers]), d.starts_at, d.ends_at,
                               d.comment, d.by, e.occurred_at, e.version)
        elif e.type == "AlertSilenced":
            await conn.execute(qualified(schema, SWALLOWED), e.incident_id, e.version, d.fingerprint,
                               d.alertname, to_json(d.labels), d.starts_at, e.occurred_at, d.window)
        else:
            await conn.execute(qualified(schema, EXPIRED), e.incident_id, e.version, e.occurred_at, d.by)
