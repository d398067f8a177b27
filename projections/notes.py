"""Notes read model: the notes responders added to an incident."""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg

from contracts.events import NoteAdded
from projections.logged import LoggedEvent
from projections.rows import qualified

# The table's DDL, applied by `projections.schema`'s numbered migrations (never edited once applied).
# Migration 1.
CREATE = """
CREATE TABLE IF NOT EXISTS {s}.notes (
    note_id uuid PRIMARY KEY,
    incident_id uuid NOT NULL,
    text text NOT NULL,
    author text NOT NULL,
    added_at timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS notes_incident_idx ON {s}.notes (incident_id, added_at);
"""

INSERT = """
INSERT INTO {s}.notes (note_id, incident_id, text, author, added_at)
VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (note_id) DO NOTHING
"""


async def apply_batch(conn: asyncpg.Connection, schema: str, events: Sequence[LoggedEvent]) -> None:
    """Record the note of every `NoteAdded` among `events`."""
    rows = [
        (d.note_id, e.incident_id, d.text, d.author, e.occurred_at)
        for e, d in ((i.event, i.event.data) for i in events)
        if e.type == NoteAdded.event_type
    ]
    if rows:
        await conn.executemany(qualified(schema, INSERT), rows)
