"""Change feed: one row per applied event, the exact `data` of the SSE message.

Change ids must be assigned in commit order, or a gateway that already streamed
id 200 would never see a slower transaction's id 150. So the batch that writes
changes takes a per-schema advisory lock first and holds it to commit: ids are
allocated, and become visible, one batch after another.
"""

from __future__ import annotations

from collections.abc import Sequence
import asyncpg

from projections.incidents import Row, SummaryEncoder
from projections.logged import LoggedEvent, iso
from projections.schema import changes_channel, qualified, quote_ident

LOCK = "SELECT pg_advisory_xact_lock(hashtextextended('warroom.changes:' || $1, 0))"
ALLOCATE = "SELECT nextval($1::regclass) AS id FROM generate_series(1, $2)"
NOTIFY = "SELECT pg_notify($1, $2)"
PRUNE = "DELETE FROM {s}.changes WHERE change_id <= (SELECT max(change_id) FROM {s}.changes) - $1"
COLUMNS = ("change_id", "incident_id", "version", "type", "service", "occurred_at", "payload")


async def lock(conn: asyncpg.Connection, schema: str) -> None:
    """Serialize the end of batch transactions that write to `schema`'s change feed."""
    await conn.execute(LOCK, schema)


def payload(change_id: int, item: LoggedEvent, incident_json: str | None) -> str:
    """The SSE `data` of a change, as JSON text (SPEC §8); `incident_json` is the
    incident row after the event (see `incidents.SummaryEncoder`)."""
    e = item.event
    return (f'{{"change_id":{change_id},"incident_id":"{e.incident_id}","version":{e.version},'
            f'"type":"{e.type}","occurred_at":"{iso(e.occurred_at)}","data":{item.data_json},'
            f'"incident":{incident_json or "null"}}}')


async def apply_batch(
    conn: asyncpg.Connection, schema: str, events: Sequence[LoggedEvent], incidents: Sequence[Row | None]
) -> int | None:
    """Append a change per event (with the incident row after it); return the highest id.

    Must run under `lock` in the batch's transaction.
    """
    if not events:
        return None
    sequence = f"{quote_ident(schema)}.changes_change_id_seq"
    ids = sorted(r["id"] for r in await conn.fetch(ALLOCATE, sequence, len(events)))
    encoder = SummaryEncoder()
    records = []
    for change_id, item, row in zip(ids, events, incidents):
        e = item.event
        records.append((change_id, e.incident_id, e.version, e.type,
                        row["service"] if row else None, e.occurred_at,
                        payload(change_id, item, encoder.encode(row) if row else None)))
    await conn.copy_records_to_table("changes", schema_name=schema, columns=COLUMNS, records=records)
    return ids[-1]


async def notify(conn: asyncpg.Connection, schema: str, change_id: int) -> None:
    """Announce `change_id` on the schema's channel; delivered only if the transaction commits."""
    await conn.execute(NOTIFY, changes_channel(schema), str(change_id))


async def prune(conn: asyncpg.Connection, schema: str, keep: int) -> None:
    """Drop all but the newest `keep` changes (older resumes get `event: reset`)."""
    await conn.execute(qualified(schema, PRUNE), keep)
