"""The change-feed protocol between the projector (writer) and the gateways (readers).

The projector allocates change ids under a per-schema, transaction-scoped advisory lock
and holds it to commit, so ids become visible in the order they were allocated; after
committing it announces the newest id on the schema's NOTIFY channel. A gateway LISTENs
on that channel, and knows that no transaction has ids left to commit when it can take
the same lock itself.
"""

from __future__ import annotations

_LOCK_KEY = "hashtextextended('warroom.changes:' || $1, 0)"  # $1: the schema

WRITER_LOCK = f"SELECT pg_advisory_xact_lock({_LOCK_KEY})"
"""Taken by the projector before it allocates change ids; held until commit."""
TRY_WRITER_LOCK = f"SELECT pg_try_advisory_xact_lock({_LOCK_KEY})"
"""False while a projector transaction holds `WRITER_LOCK`."""
NOTIFY = "SELECT pg_notify($1, $2)"
"""$1: `channel(schema)`, $2: the newest committed change id, as text."""
RESET = "reset"
"""The `type` of the change row a reset of the read models leaves (`event: reset` on SSE)."""


def channel(schema: str) -> str:
    """The LISTEN/NOTIFY channel on which committed change ids are announced."""
    return f"{schema}_changes"
