"""Which log the read models describe, and starting them again when it went back.

The read models record, beside their offsets, the cluster the events were read from
(`log_identity`). When the broker comes back with another log (`foundation.log_identity`),
the projector either refuses to apply (a person decides: `warroom replay` rebuilds from
the log there is) or, with `projector.on_log_reset = "rebuild"` (what `warroom up` runs
on its memory-only broker), empties every read model and reads the new log from its
start: `reset` below, in one transaction.

The change feed is not restarted: its ids go on, and the reset leaves one row of type
`reset` as the oldest change kept. Every SSE client receives it as `event: reset` (the
gateway sends it whatever the client's filter), and a client resuming from before it
gets a reset too, so each one refetches and follows the new log from there.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from uuid import UUID

import asyncpg

from foundation.change_feed import RESET
from projections import changes
from projections.rows import qualified
from projections.replay.switch import stop_writers
from projections.replay.verify import REBUILT_TABLES

# The table's DDL, applied by `projections.schema`'s numbered migrations (never edited once applied).
# Migration 4.
CREATE = """
CREATE TABLE IF NOT EXISTS {s}.log_identity (
    topic text PRIMARY KEY,
    cluster_id text,
    epoch int NOT NULL DEFAULT 1,
    recorded_at timestamptz NOT NULL DEFAULT now()
);
"""

NO_INCIDENT = UUID(int=0)

SELECT = "SELECT cluster_id, epoch FROM {s}.log_identity WHERE topic = $1"
RECORD = """
INSERT INTO {s}.log_identity (topic, cluster_id) VALUES ($1, $2)
ON CONFLICT (topic) DO UPDATE SET cluster_id = EXCLUDED.cluster_id, recorded_at = now()
"""
NEXT_EPOCH = """
INSERT INTO {s}.log_identity (topic, cluster_id) VALUES ($1, $2)
ON CONFLICT (topic) DO UPDATE SET cluster_id = EXCLUDED.cluster_id, epoch = log_identity.epoch + 1,
                                  recorded_at = now()
RETURNING epoch
"""
MARKER = """
INSERT INTO {s}.changes (change_id, incident_id, version, type, service, occurred_at, payload)
VALUES ($1, $2, 0, $3, NULL, now(), $4::jsonb)
"""
NEXT_CHANGE_ID = "SELECT nextval($1::regclass)"


@dataclass(frozen=True)
class Recorded:
    cluster_id: str | None  # None: the broker names no cluster
    epoch: int


async def recorded(conn: asyncpg.Connection | asyncpg.Pool, schema: str, topic: str) -> Recorded | None:
    """The cluster the read models of `schema` were read from, if one was recorded."""
    row = await conn.fetchrow(qualified(schema, SELECT), topic)
    return Recorded(row["cluster_id"], row["epoch"]) if row is not None else None


async def record(conn: asyncpg.Connection, schema: str, topic: str, cluster_id: str | None) -> None:
    """Note that the read models of `schema` describe `topic` as `cluster_id` holds it."""
    await conn.execute(qualified(schema, RECORD), topic, cluster_id)


async def reset(conn: asyncpg.Connection, schema: str, topic: str, cluster_id: str | None, reason: str) -> int:
    """Empty every read model of `schema` and its offsets, leave the `reset` change, and
    record `cluster_id` as the log they will describe; return the new epoch.

    One transaction, while no projector batch is in flight on `schema`.
    """
    async with conn.transaction():
        await stop_writers(conn, schema)
        await changes.lock(conn, schema)
        tables = ", ".join(qualified(schema, "{s}." + table) for table in (*REBUILT_TABLES, "changes"))
        await conn.execute(f"TRUNCATE {tables}")
        change_id = await conn.fetchval(NEXT_CHANGE_ID, qualified(schema, "{s}.changes_change_id_seq"))
        payload = json.dumps({"change_id": change_id, "reason": f"the log went back ({reason}); the read models "
                              "were rebuilt from the log there is now: refetch and follow from here",
                              "oldest_change_id": change_id, "newest_change_id": change_id})
        await conn.execute(qualified(schema, MARKER), change_id, NO_INCIDENT, RESET, payload)
        epoch = await conn.fetchval(qualified(schema, NEXT_EPOCH), topic, cluster_id)
        await changes.notify(conn, schema, change_id)
    return epoch
