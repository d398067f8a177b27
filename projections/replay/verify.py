"""Checking a rebuilt schema: against the independent fold, and against another schema.

`observed` computes in SQL, per table, the same digest `projections.replay.expected` computes
in Python: the row count and the sum of a 60-bit MD5 of each row's canonical text
(timestamps as epoch microseconds, floats as rounded millionths, NULL as a marker).
Equal digests mean the stored rows are the expected multiset, whatever order or
batches wrote them. `compare_schemas` digests every column of two schemas' tables
the same way, for the rebuilt-versus-live comparison.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import asyncpg

from projections.replay.expected import Digest
from projections.rows import quote_ident


def _ts(column: str) -> str:
    return f"((extract(epoch from {column}) * 1000000)::bigint)::text"


def _millionths(column: str) -> str:
    return f"(round({column} * 1000000)::bigint)::text"


# The canonical fields of each table, in the order `projections.replay.expected` writes them.
CANONICAL: dict[str, tuple[str, ...]] = {
    "timeline": ("incident_id::text", "version::text", "event_id::text", "type", _ts("occurred_at"),
                 _ts("recorded_at"), "actor->>'kind'", "actor->>'id'", "kafka_partition::text",
                 "kafka_offset::text"),
    "notes": ("note_id::text", "incident_id::text", "text", "author", _ts("added_at")),
    "findings": ("finding_id::text", "incident_id::text", "run_id::text", "source", "kind", "summary",
                 _millionths("confidence"), _ts("changed_at"), "after_resolution::text", _ts("recorded_at"),
                 "service", "signal"),
    "incidents": ("id::text", "title", "service", "severity", "status", "version::text", "description",
                  "labels::text", _ts("opened_at"), _ts("acknowledged_at"), "acknowledged_by",
                  _ts("mitigated_at"), _ts("resolved_at"), _ts("updated_at"),
                  _millionths("time_to_acknowledge_s"), _millionths("time_to_mitigate_s"),
                  _millionths("time_to_resolve_s"), "alerts_firing::text", "opened_by->>'kind'",
                  "opened_by->>'id'"),
    "alerts": ("incident_id::text", "fingerprint", "alertname", "status", "labels::text", "annotations::text",
               _ts("first_seen"), _ts("last_seen"), _ts("resolved_at")),
    "correlation_runs": ("run_id::text", "incident_id::text", "state", "outcome", "trigger", _ts("started_at"),
                         _ts("completed_at")),
    "correlation_sources": ("run_id::text", "source", "state", "attempts::text", "duration_ms::text", "error",
                            _ts("started_at"), _ts("completed_at")),
    "services": ("name", "status", "open_incidents::text", "worst_severity", _ts("updated_at")),
    "scorecard": ("incident_id::text", _ts("opened_at"), "service", "signal", "note", "confirmed_by",
                  _ts("confirmed_at"), "confirmed_version::text", "run_id::text", "rank::text", "top1::text",
                  "top3::text", "first_named_run_id::text", _ts("first_named_at"),
                  _millionths("time_to_first_hypothesis_s")),
    "projection_offsets": ("projection", "topic", "partition::text", "next_offset::text"),
}

# Tables a rebuild must reproduce exactly; the change feed is carried over instead.
REBUILT_TABLES = ("incidents", "timeline", "notes", "alerts", "correlation_runs", "correlation_sources",
                  "findings", "notifications", "scorecard", "services", "silences", "silenced_alerts",
                  "projection_offsets")

_DIGEST = """
SELECT count(*) AS rows,
       coalesce(sum(('x' || left(md5({row}), 15))::bit(60)::bigint), 0) AS total
FROM {s}.{table}
"""


def _row(fields: tuple[str, ...]) -> str:
    return "concat_ws(E'\\x1f', " + ", ".join(f"coalesce(({f}), E'\\x1e')" for f in fields) + ")"


@dataclass(frozen=True)
class Mismatch:
    """A table whose rows are not what they should be."""

    table: str
    expected_rows: int
    found_rows: int

    def __str__(self) -> str:
        if self.expected_rows != self.found_rows:
            return f"{self.table}: {self.found_rows} rows, expected {self.expected_rows}"
        return f"{self.table}: {self.found_rows} rows as expected, but their contents differ"


async def observed(conn: asyncpg.Connection, schema: str, tables: tuple[str, ...] = tuple(CANONICAL)) -> dict[str, Digest]:
    """The canonical digest of each of `tables` in `schema`, computed by PostgreSQL."""
    out = {}
    for table in tables:
        record = await conn.fetchrow(_DIGEST.format(row=_row(CANONICAL[table]), s=quote_ident(schema), table=table))
        out[table] = Digest(record["rows"], int(record["total"]))
    return out


def mismatches(expected: Mapping[str, Digest], found: Mapping[str, Digest]) -> list[Mismatch]:
    """The tables whose digests differ (a table missing on one side counts as empty)."""
    out = []
    for table in sorted(set(expected) | set(found)):
        want, got = expected.get(table, Digest()), found.get(table, Digest())
        if (want.rows, want.total) != (got.rows, got.total):
            out.append(Mismatch(table, want.rows, got.rows))
    return out


async def verify(conn: asyncpg.Connection, schema: str, expected: Mapping[str, Digest]) -> list[Mismatch]:
    """Compare `schema` with the expected digests; [] when every table matches."""
    return mismatches(expected, await observed(conn, schema, tuple(expected)))


# --- schema against schema ----------------------------------------------------------

_COLUMNS = """
SELECT column_name FROM information_schema.columns
WHERE table_schema = $1 AND table_name = $2 ORDER BY ordinal_position
"""
_WHOLE_ROWS = """
SELECT count(*) AS rows, coalesce(sum(('x' || left(md5(ROW({columns})::text), 15))::bit(60)::bigint), 0) AS total
FROM {s}.{table}
"""


async def whole_rows(conn: asyncpg.Connection, schema: str, tables: tuple[str, ...] = REBUILT_TABLES) -> dict[str, Digest]:
    """Per table, the digest of every column of every row, as this session prints them."""
    out = {}
    for table in tables:
        columns = [r["column_name"] for r in await conn.fetch(_COLUMNS, schema, table)]
        if not columns:
            continue
        record = await conn.fetchrow(_WHOLE_ROWS.format(
            columns=", ".join(quote_ident(c) for c in columns), s=quote_ident(schema), table=table))
        out[table] = Digest(record["rows"], int(record["total"]))
    return out


async def compare_schemas(conn: asyncpg.Connection, left: str, right: str,
                          tables: tuple[str, ...] = REBUILT_TABLES) -> list[Mismatch]:
    """The tables whose rows differ between schemas `left` (expected) and `right`."""
    return mismatches(await whole_rows(conn, left, tables), await whole_rows(conn, right, tables))
