"""What a batch of events does to the read models, in one transaction.

The runner decides *which* events and offsets make a batch; this module applies
them. Order matters: the timeline insert tells which events are new (a repeat
of an (incident_id, version) already recorded is dropped), and only those reach
the other read models and the change feed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from projections import (
    alerts, changes, correlation, findings, incidents, notes, notifications, offsets, scorecard, services, silences,
    timeline,
)
from projections.logged import LoggedEvent
from projections.replay.switch import HOLD_OFF_SWITCH

PROJECTION = "read_models"
"""The name under which the read models record their offsets."""


@dataclass(frozen=True)
class BatchResult:
    applied: int
    repeated: int
    last_change_id: int | None


def unique(events: Sequence[LoggedEvent]) -> list[LoggedEvent]:
    """`events` without later repeats of an (incident_id, version) in the same batch."""
    seen: set = set()
    kept = []
    for item in events:
        if item.key not in seen:
            seen.add(item.key)
            kept.append(item)
    return kept


async def apply_batch(
    conn: asyncpg.Connection,
    schema: str,
    events: Sequence[LoggedEvent],
    positions: Mapping[tuple[str, int], int],
    *,
    projection: str = PROJECTION,
) -> BatchResult:
    """Apply `events` (in log order) and record `positions` ((topic, partition) → next
    offset) atomically; notify listeners of the new changes once committed.

    Applying the same events again changes nothing: rows are neither lost nor doubled.
    """
    async with conn.transaction():
        # First, so a replay's switch never falls in the middle of a batch (projections.replay.switch).
        await conn.execute(HOLD_OFF_SWITCH, schema)
        fresh, rows, changed, pending = await _fold_while_inserting(conn, schema, unique(events))
        await incidents.write(conn, schema, changed)
        await notes.apply_batch(conn, schema, fresh)
        await alerts.apply_batch(conn, schema, fresh)
        await correlation.apply_batch(conn, schema, fresh)
        await findings.apply_batch(conn, schema, fresh)
        await notifications.apply_batch(conn, schema, fresh)
        await silences.apply_batch(conn, schema, fresh)
        await scorecard.apply_batch(conn, schema, fresh, rows)

        # From here to commit, one projector at a time (see projections.changes).
        await changes.lock(conn, schema)
        await services.apply_batch(conn, schema, _touched_services(fresh, rows))
        last = await changes.write(conn, schema, pending)
        await offsets.save(conn, schema, projection, positions)
        if last is not None:
            await changes.notify(conn, schema, last)
    return BatchResult(applied=len(fresh), repeated=len(events) - len(fresh), last_change_id=last)


async def _fold_while_inserting(conn: asyncpg.Connection, schema: str, events: list[LoggedEvent]):
    """Insert the timeline rows and, while PostgreSQL does that, fold the incidents and
    prepare the changes as if every event were new, which is the usual case. If some
    were not, fold again, only the new ones, from the rows as they are now."""
    if not events:
        return [], [], [], []
    ids = list({item.event.incident_id for item in events})
    current = await incidents.load(conn, schema, ids)
    inserting = asyncio.ensure_future(timeline.apply_batch(conn, schema, events))
    await asyncio.sleep(0)  # the INSERT goes out before the folding below takes the CPU
    try:
        rows, changed = incidents.fold(current, events)
        pending = changes.prepare(events, rows)
    finally:
        fresh = await inserting
    if len(fresh) != len(events):
        current = await incidents.load(conn, schema, list({item.event.incident_id for item in fresh}))
        rows, changed = incidents.fold(current, fresh)
        pending = changes.prepare(fresh, rows)
    return fresh, rows, changed, pending


def _touched_services(events: Sequence[LoggedEvent], rows: Sequence[incidents.Row | None]) -> dict[str, datetime]:
    touched: dict[str, datetime] = {}
    for item, row in zip(events, rows):
        if row is None or row["service"] is None:
            continue
        at = item.event.occurred_at
        if row["service"] not in touched or touched[row["service"]] < at:
            touched[row["service"]] = at
    return touched
