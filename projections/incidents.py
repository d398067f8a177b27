"""Incidents read model: one row per incident, folded from its events.

The fold is pure (`evolve`), so a batch is applied by loading the touched rows
once, folding every event in memory and writing each row back in one statement.
The row after each event is also what the change feed carries as `incident`.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

import json

import asyncpg

from contracts import events as ev
from projections.logged import LoggedEvent, from_json, hypotheses_json, iso, to_json
from projections.rows import column_arrays, Columns, qualified, upsert_statement

# The table's DDL, applied by `projections.schema`'s numbered migrations (never edited once applied).
# Migration 1.
CREATE = """
CREATE TABLE IF NOT EXISTS {s}.incidents (
    id uuid PRIMARY KEY,
    title text,
    service text,
    severity text,
    status text,
    version int NOT NULL,
    description text,
    labels jsonb,
    opened_at timestamptz,
    acknowledged_at timestamptz,
    acknowledged_by text,
    mitigated_at timestamptz,
    resolved_at timestamptz,
    updated_at timestamptz,
    time_to_acknowledge_s double precision,
    time_to_mitigate_s double precision,
    time_to_resolve_s double precision,
    alerts_firing int NOT NULL DEFAULT 0,
    correlation jsonb,
    top_hypothesis jsonb,
    impact jsonb,
    opened_by jsonb
);
CREATE INDEX IF NOT EXISTS incidents_opened_idx ON {s}.incidents (opened_at DESC, id DESC);
CREATE INDEX IF NOT EXISTS incidents_status_idx ON {s}.incidents (status);
CREATE INDEX IF NOT EXISTS incidents_service_idx ON {s}.incidents (service);
CREATE INDEX IF NOT EXISTS incidents_severity_idx ON {s}.incidents (severity);
"""
# Migration 2: confirmed root causes.
ADD_ROOT_CAUSE = """
ALTER TABLE {s}.incidents ADD COLUMN IF NOT EXISTS root_cause jsonb;
"""

Row = dict[str, Any]

COLUMNS: Columns = (
    ("id", "uuid"), ("title", "text"), ("service", "text"), ("severity", "text"),
    ("status", "text"), ("version", "int"), ("description", "text"), ("labels", "jsonb"),
    ("opened_at", "timestamptz"), ("acknowledged_at", "timestamptz"),
    ("acknowledged_by", "text"), ("mitigated_at", "timestamptz"),
    ("resolved_at", "timestamptz"), ("updated_at", "timestamptz"),
    ("time_to_acknowledge_s", "float8"), ("time_to_mitigate_s", "float8"),
    ("time_to_resolve_s", "float8"), ("alerts_firing", "int"), ("correlation", "jsonb"),
    ("top_hypothesis", "jsonb"), ("impact", "jsonb"), ("opened_by", "jsonb"), ("root_cause", "jsonb"),
)
JSON_COLUMNS = frozenset(name for name, kind in COLUMNS if kind == "jsonb")

SELECT = "SELECT * FROM {s}.incidents WHERE id = ANY($1::uuid[])"

UPSERT = upsert_statement("incidents", COLUMNS, ("id",))


def seconds_between(start: datetime | None, end: datetime | None) -> float | None:
    """Seconds from `start` to `end`, or None when either is unknown."""
    if start is None or end is None:
        return None
    return (end - start).total_seconds()


def opened(event: ev.EventEnvelope) -> Row:
    d: ev.IncidentOpened = event.data  # type: ignore[assignment]
    return {
        "id": event.incident_id, "title": d.title, "service": d.service,
        "severity": str(d.severity), "status": "open", "version": event.version,
        "description": d.description, "labels": dict(d.labels),
        "opened_at": event.occurred_at, "acknowledged_at": None, "acknowledged_by": None,
        "mitigated_at": None, "resolved_at": None, "updated_at": event.occurred_at,
        "time_to_acknowledge_s": None, "time_to_mitigate_s": None, "time_to_resolve_s": None,
        "alerts_firing": 0, "correlation": None, "top_hypothesis": None, "impact": None,
        "opened_by": event.actor.model_dump(mode="json"), "root_cause": None,
    }


def evolve(row: Row | None, event: ev.EventEnvelope) -> Row | None:
    """The incident row after `event`; `row` is not modified.

    Events of an incident never opened (a log that lost its start) leave no row.
    """
    # Dispatch on the type name: class patterns would run pydantic's (ABC) isinstance
    # for every case, a measurable share of the projector's CPU.
    d: Any = event.data
    kind = event.type
    if kind == "IncidentOpened":
        return opened(event)
    if row is None:
        return None
    row = dict(row, version=event.version, updated_at=event.occurred_at)
    at = event.occurred_at
    match kind:
        case "IncidentAcknowledged":
            if row["acknowledged_at"] is None:
                row["acknowledged_at"], row["acknowledged_by"] = at, d.by
                row["time_to_acknowledge_s"] = seconds_between(row["opened_at"], at)
        case "StatusChanged":
            row["status"] = str(d.to)
            if d.to == "mitigated" and row["mitigated_at"] is None:
                row["mitigated_at"] = at
                row["time_to_mitigate_s"] = seconds_between(row["opened_at"], at)
            if d.to == "resolved":
                row["resolved_at"] = at
                row["time_to_resolve_s"] = seconds_between(row["opened_at"], at)
            elif d.from_ == "resolved":  # reopened: it is not resolved any more
                row["resolved_at"] = row["time_to_resolve_s"] = None
        case "SeverityChanged":
            row["severity"] = str(d.to)
        case "AlertAttached":
            row["alerts_firing"] = row["alerts_firing"] + 1
        case "AlertResolved":
            row["alerts_firing"] = d.firing_left
        case "CorrelationStarted":
            row["correlation"] = {
                "run_id": str(d.run_id), "state": "running", "outcome": None,
                "trigger": d.trigger, "started_at": iso(at), "completed_at": None,
                "sources": {source: "pending" for source in d.sources}, "findings": 0,
            }
        case "CorrelationSourceStarted" | "CorrelationSourceCompleted" | "FindingRecorded" \
                | "CorrelationCompleted":
            row["correlation"], top = _run_progress(row["correlation"], kind, d, at)
            if top is not _UNCHANGED:
                row["top_hypothesis"] = top
        case "ImpactAssessed":
            row["impact"] = {**d.model_dump(mode="json"), "assessed_at": iso(at)}
        case "RootCauseConfirmed":
            row["root_cause"] = {"service": d.service, "signal": d.signal, "note": d.note,
                                 "confirmed_by": d.by, "confirmed_at": iso(at), "version": event.version,
                                 "supersedes": d.supersedes}
    return row


_UNCHANGED: Any = object()


def _run_progress(summary: dict | None, kind: str, d: Any, at: datetime) -> tuple[dict | None, Any]:
    # Only the latest run is summarized; a slower, older run does not overwrite it.
    if summary is None or summary.get("run_id") != str(d.run_id):
        return summary, _UNCHANGED
    summary = dict(summary, sources=dict(summary["sources"]))
    top: Any = _UNCHANGED
    match kind:
        case "CorrelationSourceStarted":
            summary["sources"][d.source] = "running"
        case "CorrelationSourceCompleted":
            summary["sources"][d.source] = d.outcome
        case "FindingRecorded":
            summary["findings"] = summary.get("findings", 0) + 1
        case "CorrelationCompleted":
            summary.update(state="completed", outcome=d.outcome, completed_at=iso(at))
            top = hypotheses_json(d.hypotheses[:1])[0] if d.hypotheses else None
    return summary, top


def to_summary(row: Row) -> dict[str, Any]:
    """The incident as JSON-ready data: the `incident` of a change-feed message."""
    out: dict[str, Any] = {}
    for name, kind in COLUMNS:
        value = row[name]
        if kind == "timestamptz":
            value = iso(value)
        elif kind == "uuid":
            value = str(value)
        out[name] = value
    return out


_KEYS = tuple((name, kind, json.dumps(name) + ":") for name, kind in COLUMNS)
_text = json.encoder.encode_basestring  # type: ignore[attr-defined]


def _fragment(key: str, kind: str, value: Any) -> str:
    if value is None:
        return key + "null"
    if kind == "text":
        return key + _text(value)
    if kind == "uuid":
        return f'{key}"{value}"'
    if kind == "int":
        return key + str(int(value))
    if kind == "float8":
        return key + float.__repr__(float(value))
    if kind == "timestamptz":
        return f'{key}"{iso(value)}"'
    return key + to_json(value)


class SummaryEncoder:
    """`to_summary(row)` as JSON text, for the successive rows of a batch.

    An event changes few columns, and the fold shares unchanged values between
    snapshots, so only the columns whose value is a new object are encoded again.
    """

    def __init__(self) -> None:
        self._last: dict[UUID, tuple[list[Any], list[str]]] = {}

    def encode(self, row: Row) -> str:
        values = [row[name] for name, _, _ in _KEYS]
        last = self._last.get(row["id"])
        if last is None:
            parts = [_fragment(key, kind, v) for (_, kind, key), v in zip(_KEYS, values)]
        else:
            parts = [part if v is old else _fragment(key, kind, v)
                     for (_, kind, key), v, old, part in zip(_KEYS, values, last[0], last[1])]
        self._last[row["id"]] = (values, parts)
        return "{" + ",".join(parts) + "}"


async def load(conn: asyncpg.Connection, schema: str, ids: Sequence[UUID]) -> dict[UUID, Row]:
    """The current rows of incidents `ids` (missing ones are absent)."""
    rows = await conn.fetch(qualified(schema, SELECT), list(ids))
    loaded: dict[UUID, Row] = {}
    for record in rows:
        row = dict(record)
        for name in JSON_COLUMNS:
            row[name] = from_json(row[name])
        loaded[row["id"]] = row
    return loaded


def fold(current: dict[UUID, Row], events: Sequence[LoggedEvent]) -> tuple[list[Row | None], list[Row]]:
    """Fold `events` over the `current` rows (not modified): the row after each event,
    aligned with `events`, and the final row of every incident they touched."""
    rows: dict[UUID, Row | None] = {}
    after: list[Row | None] = []
    for item in events:
        incident = item.event.incident_id
        row = rows[incident] if incident in rows else current.get(incident)
        rows[incident] = row = evolve(row, item.event)
        after.append(row)
    return after, [row for row in rows.values() if row is not None]


async def write(conn: asyncpg.Connection, schema: str, rows: Sequence[Row]) -> None:
    """Upsert `rows` in one statement."""
    if rows:
        await conn.execute(qualified(schema, UPSERT), *column_arrays(rows, COLUMNS))
