"""Putting a rebuilt schema in the live one's place, atomically, while everything runs.

The gateway and the projector name the live schema (`settings.postgres.schema_name`),
never a pointer to it: the gateway through its pool's search_path, the projector in
qualified statements. So the switch is two renames in one transaction,
`ALTER SCHEMA live RENAME TO old; ALTER SCHEMA rebuilt RENAME TO live`: a statement
that starts after the commit resolves the name to the rebuilt tables (PostgreSQL
invalidates every cached plan when a schema is renamed, prepared statements included),
one that started before finishes on the old tables. Readers are never blocked.

Writers must not straddle the switch, or a batch would write half into each schema.
Every projector batch holds `HOLD_OFF_SWITCH` (a shared advisory lock) from its first
statement to its commit; the switch takes the same lock exclusively. While it holds
it no batch is in flight and none can start, the rebuilt schema is brought to exactly
the live schema's offsets, and the renames commit. Batches then resume on the rebuilt
schema from those offsets: nothing is skipped or applied twice.

The change feed is carried over, not rebuilt: its ids are the positions SSE clients
resume from, allocated in commit order, which no fold of the log can reproduce. The
live `changes` table (with its id sequence) is moved into the rebuilt schema in the
same transaction, so the feed's ids continue, the LISTEN channel keeps its name, and
a client resuming with any Last-Event-ID gets exactly what it missed.
"""

from __future__ import annotations

from datetime import UTC, datetime

import asyncpg

from projections.rows import quote_ident

HOLD_OFF_SWITCH = "SELECT pg_advisory_xact_lock_shared(hashtextextended('warroom.switch:' || $1, 0))"
"""Taken (shared) by every projector batch on `$1`, the schema it writes."""

STOP_WRITERS = "SELECT pg_advisory_xact_lock(hashtextextended('warroom.switch:' || $1, 0))"
"""Taken by the switch: waits for batches in flight on `$1` and holds new ones off until commit."""

ONE_REPLAY = "SELECT pg_try_advisory_lock(hashtextextended('warroom.replay:' || $1, 0))"
END_REPLAY = "SELECT pg_advisory_unlock(hashtextextended('warroom.replay:' || $1, 0))"

SCHEMA_EXISTS = "SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)"
TABLE_EXISTS = "SELECT to_regclass($1) IS NOT NULL"
OLD_SCHEMAS = r"SELECT nspname FROM pg_namespace WHERE nspname ~ ('^' || $1 || '_old\d{14}(_\d+)?$') ORDER BY 1"
REBUILDS = r"SELECT nspname FROM pg_namespace WHERE nspname ~ ('^' || $1 || '_r\d{14}(_\d+)?$') ORDER BY 1"
MAX_IDENTIFIER = 63


class SwitchError(RuntimeError):
    """The switch could not be made; nothing was changed."""


def stamp(now: datetime | None = None) -> str:
    return (now or datetime.now(UTC)).strftime("%Y%m%d%H%M%S")


async def fresh_name(conn: asyncpg.Connection, live: str, infix: str, now: datetime | None = None) -> str:
    """`<live>_<infix><UTC timestamp>`, with a counter if taken; refused if PostgreSQL
    would have to truncate it."""
    base = f"{live}_{infix}{stamp(now)}"
    name, n = base, 1
    while await conn.fetchval(SCHEMA_EXISTS, name):
        n += 1
        name = f"{base}_{n}"
    if len(name.encode()) > MAX_IDENTIFIER:
        raise SwitchError(f"schema name {name!r} is longer than PostgreSQL's {MAX_IDENTIFIER} bytes; "
                          f"use a shorter postgres.schema_name")
    return name


async def stop_writers(conn: asyncpg.Connection, live: str) -> None:
    """Inside a transaction: wait until no projector batch is writing `live`, and keep it so
    until the transaction ends."""
    await conn.execute(STOP_WRITERS, live)


async def swap(conn: asyncpg.Connection, live: str, rebuilt: str, old: str) -> None:
    """Inside the transaction holding `stop_writers`: move the live change feed into
    `rebuilt`, then rename `live` to `old` and `rebuilt` to `live`."""
    live_q, rebuilt_q = quote_ident(live), quote_ident(rebuilt)
    if await conn.fetchval(TABLE_EXISTS, f"{live_q}.changes"):
        await conn.execute(f"DROP TABLE {rebuilt_q}.changes")
        await conn.execute(f"ALTER TABLE {live_q}.changes SET SCHEMA {rebuilt_q}")
    await conn.execute(f"ALTER SCHEMA {live_q} RENAME TO {quote_ident(old)}")
    await conn.execute(f"ALTER SCHEMA {rebuilt_q} RENAME TO {live_q}")


async def old_schemas(conn: asyncpg.Connection, live: str) -> list[str]:
    """Schemas earlier switches left behind for `live` (`<live>_old<timestamp>`)."""
    return [r["nspname"] for r in await conn.fetch(OLD_SCHEMAS, _regex_literal(live))]


async def abandoned_rebuilds(conn: asyncpg.Connection, live: str) -> list[str]:
    """Rebuilt schemas of `live` (`<live>_r<timestamp>`). Only meaningful while holding
    `ONE_REPLAY`: then none belongs to a running replay, so these were left by one that died."""
    return [r["nspname"] for r in await conn.fetch(REBUILDS, _regex_literal(live))]


async def drop_schema(conn: asyncpg.Connection, schema: str) -> None:
    await conn.execute(f"DROP SCHEMA IF EXISTS {quote_ident(schema)} CASCADE")


def _regex_literal(text: str) -> str:
    # Schema names are [a-z0-9_], which need no escaping; anything else is escaped anyway.
    return "".join(c if c.isalnum() or c == "_" else "\\" + c for c in text)
