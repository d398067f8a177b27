"""Services read model: each service's status, derived from its unresolved incidents.

`outage` while an unresolved critical incident exists, `degraded` while any other
unresolved incident exists, else `operational`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime

import asyncpg

from projections.rows import qualified

# The table's DDL, applied by `projections.schema`'s numbered migrations (never edited once applied).
# Migration 1.
CREATE = """
CREATE TABLE IF NOT EXISTS {s}.services (
    name text PRIMARY KEY,
    status text NOT NULL,
    open_incidents int NOT NULL DEFAULT 0,
    worst_severity text,
    updated_at timestamptz
);
"""

SEVERITY_ORDER = ("critical", "high", "medium", "low")

OPEN_COUNTS = """
SELECT service, severity, count(*) AS n
FROM {s}.incidents
WHERE service = ANY($1::text[]) AND status <> 'resolved'
GROUP BY service, severity
"""

UPSERT = """
INSERT INTO {s}.services (name, status, open_incidents, worst_severity, updated_at)
SELECT * FROM unnest($1::text[], $2::text[], $3::int[], $4::text[], $5::timestamptz[])
ON CONFLICT (name) DO UPDATE SET
    status = EXCLUDED.status,
    open_incidents = EXCLUDED.open_incidents,
    worst_severity = EXCLUDED.worst_severity,
    updated_at = greatest(services.updated_at, EXCLUDED.updated_at)
"""


def worst(severities: Iterable[str]) -> str | None:
    """The most severe of `severities` (None when there are none)."""
    ranked = [s for s in severities if s in SEVERITY_ORDER]
    return min(ranked, key=SEVERITY_ORDER.index) if ranked else None


def service_status(open_severities: Iterable[str]) -> str:
    """The status of a service whose unresolved incidents have `open_severities`."""
    severities = list(open_severities)
    if "critical" in severities:
        return "outage"
    return "degraded" if severities else "operational"


async def apply_batch(conn: asyncpg.Connection, schema: str, touched: Mapping[str, datetime]) -> None:
    """Recompute the services in `touched` (name → time of its latest event) from incidents.

    Counted from the table rather than incrementally, so the result cannot drift;
    callers serialize this step across projectors (see `projections.apply`).
    """
    if not touched:
        return
    names = sorted(touched)
    open_by_service: dict[str, list[str]] = {name: [] for name in names}
    for record in await conn.fetch(qualified(schema, OPEN_COUNTS), names):
        open_by_service[record["service"]].extend([record["severity"]] * record["n"])
    statuses = [service_status(open_by_service[n]) for n in names]
    counts = [len(open_by_service[n]) for n in names]
    worsts = [worst(open_by_service[n]) for n in names]
    await conn.execute(qualified(schema, UPSERT), names, statuses, counts, worsts,
                       [touched[n] for n in names])
