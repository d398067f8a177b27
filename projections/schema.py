"""The read-model schema: numbered migrations applied by `migrate`.

The projector owns this DDL; the gateway only reads. The schema name is a
parameter because `warroom replay` builds into a fresh schema beside the live one.
Migrations are append-only: add a new numbered entry, never edit an applied one; the
DDL of each table is a constant in its read model's module, which the entries name.
`qualified` and `quote_ident` (from `projections.rows`) are importable from here too.
"""

from __future__ import annotations

import asyncpg

from projections import (
    alerts, changes, correlation, findings, incidents, notes, notifications, offsets, scorecard, services, silences,
    timeline,
)
from projections.replay import log_reset
from projections.rows import qualified, quote_ident  # noqa: F401 - also imported from here

# One statement list per version; `{s}` is the quoted schema name. Each table's DDL sits
# beside the code that reads and writes it; a migration names the pieces it applies.
MIGRATION_1 = "".join((
    incidents.CREATE, timeline.CREATE, notes.CREATE, alerts.CREATE, correlation.CREATE_RUNS,
    correlation.CREATE_SOURCES, findings.CREATE, services.CREATE, changes.CREATE, offsets.CREATE))

# Confirmed root causes: shown on the incident, and scored against correlation's runs.
MIGRATION_2 = incidents.ADD_ROOT_CAUSE + scorecard.CREATE

# Findings name the service and signal they are about (events of schema version 3).
MIGRATION_3 = findings.ADD_SERVICE_AND_SIGNAL

# Which log the read models describe (projections.replay.log_reset): the cluster it was read
# from, and how many times the read models were started again from an empty log.
MIGRATION_4 = log_reset.CREATE

# The delivery ledger (events of schema version 4): one row per attempt or escalation.
MIGRATION_5 = notifications.CREATE

# Silences (projections.silences): one row per silence or maintenance window, and what each swallowed.
MIGRATION_6 = silences.CREATE

MIGRATIONS: tuple[tuple[int, str], ...] = (
    (1, MIGRATION_1), (2, MIGRATION_2), (3, MIGRATION_3), (4, MIGRATION_4), (5, MIGRATION_5),
    (6, MIGRATION_6))
"""(version, DDL) in order; `migrate` applies those not yet recorded."""

CREATE_MIGRATIONS_TABLE = """
CREATE SCHEMA IF NOT EXISTS {s};
CREATE TABLE IF NOT EXISTS {s}.schema_migrations (
    version int PRIMARY KEY,
    applied_at timestamptz NOT NULL DEFAULT now()
);
"""

# One lock per schema name, so building a replay schema never waits on the live one.
LOCK = "SELECT pg_advisory_xact_lock(hashtextextended('warroom.migrate:' || $1, 0))"


async def migrate(conn_or_pool: asyncpg.Connection | asyncpg.Pool, schema: str) -> list[int]:
    """Bring `schema` up to the newest migration; return the versions applied now.

    Safe to call from any number of processes at once: the work runs in one
    transaction under an advisory lock, and already-applied versions are skipped.
    """
    if isinstance(conn_or_pool, asyncpg.Pool):
        async with conn_or_pool.acquire() as conn:
            return await _migrate(conn, schema)
    return await _migrate(conn_or_pool, schema)


async def _migrate(conn: asyncpg.Connection, schema: str) -> list[int]:
    s = quote_ident(schema)
    applied_now: list[int] = []
    async with conn.transaction():
        await conn.execute(LOCK, schema)
        await conn.execute(CREATE_MIGRATIONS_TABLE.format(s=s))
        done = {r["version"] for r in await conn.fetch(f"SELECT version FROM {s}.schema_migrations")}
        for version, ddl in MIGRATIONS:
            if version in done:
                continue
            await conn.execute(ddl.format(s=s))
            await conn.execute(f"INSERT INTO {s}.schema_migrations (version) VALUES ($1)", version)
            applied_now.append(version)
    return applied_now
