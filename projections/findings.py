"""Findings read model: what each correlation source found about which service and
signal, with its evidence. Findings of version-1 events name neither (NULL)."""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg

from contracts.events import FindingRecorded
from projections.logged import LoggedEvent, to_json
from projections.rows import qualified

# The table's DDL, applied by `projections.schema`'s numbered migrations (never edited once applied).
# Migration 1.
CREATE = """
CREATE TABLE IF NOT EXISTS {s}.findings (
    finding_id uuid PRIMARY KEY,
    incident_id uuid NOT NULL,
    run_id uuid NOT NULL,
    source text NOT NULL,
    kind text NOT NULL,
    summary text NOT NULL,
    confidence double precision NOT NULL,
    changed_at timestamptz,
    evidence jsonb NOT NULL,
    after_resolution bool NOT NULL DEFAULT false,
    recorded_at timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS findings_incident_idx ON {s}.findings (incident_id, confidence DESC);
"""
# Migration 3: events of schema version 3 name them.
ADD_SERVICE_AND_SIGNAL = """
ALTER TABLE {s}.findings ADD COLUMN IF NOT EXISTS service text;
ALTER TABLE {s}.findings ADD COLUMN IF NOT EXISTS signal text;
"""

INSERT = """
INSERT INTO {s}.findings (finding_id, incident_id, run_id, source, kind, summary, confidence,
                          changed_at, evidence, after_resolution, recorded_at, service, signal)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9::jsonb, $10, $11, $12, $13)
ON CONFLICT (finding_id) DO NOTHING
"""


async def apply_batch(conn: asyncpg.Connection, schema: str, events: Sequence[LoggedEvent]) -> None:
    """Record every `FindingRecorded` among `events`."""
    rows = []
    for item in events:
        e, d = item.event, item.event.data
        if e.type == FindingRecorded.event_type:
            rows.append((d.finding_id, e.incident_id, d.run_id, d.source, d.kind, d.summary,
                         d.confidence, d.changed_at, to_json(d.evidence),
                         d.after_resolution, e.recorded_at, d.service, d.signal))
    if rows:
        await conn.executemany(qualified(schema, INSERT), rows)
