"""Alerts read model: the alerts attached to each incident and whether they still fire."""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg

from contracts.events import AlertAttached, AlertResolved
from projections.logged import LoggedEvent, execute_in_order, to_json
from projections.schema import qualified

# An alert that fires again after resolving keeps its first_seen and starts firing anew.
ATTACH = """
INSERT INTO {s}.alerts (incident_id, fingerprint, alertname, status, labels, annotations,
                        first_seen, last_seen, resolved_at)
VALUES ($1, $2, $3, 'firing', $4::jsonb, $5::jsonb, $6, $7, NULL)
ON CONFLICT (incident_id, fingerprint) DO UPDATE SET
    alertname = coalesce(EXCLUDED.alertname, alerts.alertname),
    status = 'firing',
    labels = EXCLUDED.labels,
    annotations = EXCLUDED.annotations,
    first_seen = least(alerts.first_seen, EXCLUDED.first_seen),
    last_seen = greatest(alerts.last_seen, EXCLUDED.last_seen),
    resolved_at = NULL
"""

# Resolving an alert the log never attached still leaves a row, so nothing is silent.
RESOLVE = """
INSERT INTO {s}.alerts (incident_id, fingerprint, alertname, status, labels, annotations,
                        first_seen, last_seen, resolved_at)
VALUES ($1, $2, NULL, 'resolved', '{{}}', '{{}}', NULL, $3, $3)
ON CONFLICT (incident_id, fingerprint) DO UPDATE SET
    status = 'resolved',
    last_seen = greatest(alerts.last_seen, EXCLUDED.last_seen),
    resolved_at = EXCLUDED.resolved_at
"""


async def apply_batch(conn: asyncpg.Connection, schema: str, events: Sequence[LoggedEvent]) -> None:
    """Apply `AlertAttached` / `AlertResolved` among `events`, in log order."""
    attach, resolve = qualified(schema, ATTACH), qualified(schema, RESOLVE)
    statements: list[tuple[str, tuple]] = []
    for item in events:
        e, d = item.event, item.event.data
        if isinstance(d, AlertAttached):
            statements.append((attach, (e.incident_id, d.fingerprint, d.alertname, to_json(d.labels),
                                        to_json(d.annotations), d.starts_at, e.occurred_at)))
        elif isinstance(d, AlertResolved):
            statements.append((resolve, (e.incident_id, d.fingerprint, d.ends_at)))
    await execute_in_order(conn, statements)
