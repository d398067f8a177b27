"""Change feed: one row per applied event, the exact `data` of the SSE message.

Change ids must be assigned in commit order, or a gateway that already streamed
id 200 would never see a slower transaction's id 150. So the batch that writes
changes takes a per-schema advisory lock first and holds it to commit: ids are
allocated, and become visible, one batch after another.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

import asyncpg

from projections.incidents import Row, SummaryEncoder
from projections.logged import LoggedEvent, iso
from foundation.change_feed import NOTIFY, WRITER_LOCK, channel
from projections.rows import qualified, quote_ident

# The table's DDL, applied by `projections.schema`'s numbered migrations (never edited once applied).
# Migration 1.
CREATE = """
CREATE TABLE IF NOT EXISTS {s}.changes (
    change_id bigserial PRIMARY KEY,
    incident_id uuid NOT NULL,
    version int NOT NULL,
    type text NOT NULL,
    service text,
    occurred_at timestamptz NOT NULL,
    payload jsonb NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS changes_incident_idx ON {s}.changes (incident_id, change_id);
"""

ALLOCATE = "SELECT nextval($1::regclass) AS id FROM generate_series(1, $2)"
PRUNE = "DELETE FROM {s}.changes WHERE change_id <= (SELECT max(change_id) FROM {s}.changes) - $1"
COLUMNS = ("change_id", "incident_id", "version", "type", "service", "occurred_at", "payload")


async def lock(conn: asyncpg.Connection, schema: str) -> None:
    """Serialize the end of batch transactions that write to `schema`'s change feed."""
    await conn.execute(WRITER_LOCK, schema)


def payload(change_id: int, item: LoggedEvent, incident_json: str | None) -> str:
    """The SSE `data` of a change, as JSON text (SPEC §8); `incident_json` is the
    incident row after the event (see `incidents.SummaryEncoder`)."""
    return _with_id(change_id, _tail(item, incident_json))


def _tail(item: LoggedEvent, incident_json: str | None) -> str:
    # Everything after the change id, which is only known under the lock.
    e = item.event
    return (f'"incident_id":"{e.incident_id}","version":{e.version},"type":"{e.type}",'
            f'"occurred_at":"{iso(e.occurred_at)}","data":{item.data_json},'
            f'"incident":{incident_json or "null"}}}')


def _with_id(change_id: int, tail: str) -> str:
    return f'{{"change_id":{change_id},{tail}'


@dataclass(frozen=True, slots=True)
class Pending:
    """A change whose row and message are ready but for the change id."""

    incident_id: UUID
    version: int
    type: str
    service: str | None
    occurred_at: datetime
    tail: str


def prepare(events: Sequence[LoggedEvent], incidents: Sequence[Row | None]) -> list[Pending]:
    """The changes of `events`, each with the incident row after it (aligned lists)."""
    encoder = SummaryEncoder()
    return [
        Pending(item.event.incident_id, item.event.version, item.event.type,
                row["service"] if row else None, item.event.occurred_at,
                _tail(item, encoder.encode(row) if row else None))
        for item, row in zip(events, incidents)
    ]


async def write(conn: asyncpg.Connection, schema: str, pending: Sequence[Pending]) -> int | None:
    """Give `pending` their change ids (in order) and append them; return the highest id.

    Must run under `lock` in the batch's transaction.
    """
    if not pending:
        return None
    sequence = f"{quote_ident(schema)}.changes_change_id_seq"
    ids = sorted(r["id"] for r in await conn.fetch(ALLOCATE, sequence, len(pending)))
    records = [(change_id, p.incident_id, p.version, p.type, p.service, p.occurred_at, _with_id(change_id, p.tail))
               for change_id, p in zip(ids, pending)]
    await conn.copy_records_to_table("changes", schema_name=schema, columns=COLUMNS, records=records)
    return ids[-1]


async def notify(conn: asyncpg.Connection, schema: str, change_id: int) -> None:
    """Announce `change_id` on the schema's channel; delivered only if the transaction commits."""
    await conn.execute(NOTIFY, channel(schema), str(change_id))


async def prune(conn: asyncpg.Connection, schema: str, keep: int) -> None:
    """Drop all but the newest `keep` changes (older resumes get `event: reset`)."""
    await conn.execute(qualified(schema, PRUNE), keep)
