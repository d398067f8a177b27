"""Timeline read model: one row per event, with a sentence a person can read.

The timeline's primary key (incident_id, version) is also what makes the whole
projection idempotent: `apply_batch` returns only the events that were new, and
every other read model applies just those.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import asyncpg

from contracts import events as ev
from projections.logged import LoggedEvent, hypotheses_json
from projections.scorecard import field_of
from projections.rows import qualified

# The table's DDL, applied by `projections.schema`'s numbered migrations (never edited once applied).
# Migration 1.
CREATE = """
CREATE TABLE IF NOT EXISTS {s}.timeline (
    incident_id uuid NOT NULL,
    version int NOT NULL,
    event_id uuid NOT NULL,
    type text NOT NULL,
    occurred_at timestamptz NOT NULL,
    recorded_at timestamptz NOT NULL,
    actor jsonb NOT NULL,
    summary text NOT NULL,
    data jsonb NOT NULL,
    kafka_partition int NOT NULL,
    kafka_offset bigint NOT NULL,
    PRIMARY KEY (incident_id, version)
);
"""

INSERT = """
INSERT INTO {s}.timeline (incident_id, version, event_id, type, occurred_at, recorded_at,
                          actor, summary, data, kafka_partition, kafka_offset)
SELECT * FROM unnest($1::uuid[], $2::int[], $3::uuid[], $4::text[], $5::timestamptz[],
                     $6::timestamptz[], $7::jsonb[], $8::text[], $9::jsonb[], $10::int[],
                     $11::bigint[])
ON CONFLICT (incident_id, version) DO NOTHING
RETURNING incident_id, version
"""

NOTE_PREVIEW = 120

PROGRESS = frozenset({"CorrelationSourceStarted", "CorrelationSourceCompleted", "FindingRecorded"})
"""A run's progress: read folded under the run's start (on the dashboard, in postmortems),
while people's actions, status changes, alerts and hypotheses stand out."""


def _clip(text: str, limit: int = NOTE_PREVIEW) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _percent(value: float) -> str:
    return f"{value * 100:.0f}%"


def summarize(event: ev.EventEnvelope) -> str:
    """A short sentence describing `event` for the incident timeline."""
    d: Any = event.data
    match event.type:  # by name: see incidents.evolve
        case "IncidentOpened":
            return f"Opened by {event.actor.id}: {d.title} ({d.severity}, {d.service})"
        case "IncidentAcknowledged":
            return f"Acknowledged by {d.by}"
        case "StatusChanged":
            text = f"Status {d.from_} → {d.to}"
            return f"{text}: {d.reason}" if d.reason else text
        case "SeverityChanged":
            text = f"Severity {d.from_} → {d.to}"
            return f"{text}: {d.reason}" if d.reason else text
        case "NoteAdded":
            return f"Note by {d.author}: {_clip(d.text)}"
        case "AlertAttached":
            return f"Alert {d.alertname or d.fingerprint} firing"
        case "AlertResolved":
            left = "no alerts still firing" if d.firing_left == 0 else f"{d.firing_left} still firing"
            return f"Alert {d.fingerprint} resolved ({left})"
        case "CorrelationStarted":
            sources = ", ".join(d.sources) if d.sources else "no sources"
            return f"Correlation started over {sources}"
        case "CorrelationSourceStarted":
            return f"{d.source}: querying"
        case "CorrelationSourceCompleted":
            return _source_completed(d)
        case "FindingRecorded":
            late = " (after resolution)" if d.after_resolution else ""
            return f"{d.source} finding{late}, confidence {d.confidence:.2f}: {_clip(d.summary)}"
        case "CorrelationCompleted":
            text = f"Correlation {d.outcome}"
            top = _hypothesis_title(hypotheses_json(d.hypotheses[:1])[0]) if d.hypotheses else None
            return f"{text}; top hypothesis: {top}" if top else f"{text}; no hypothesis"
        case "ImpactAssessed":
            text = (f"SLO {d.slo}: burn rate {d.burn_rate:.1f}×, "
                    f"{_percent(d.error_budget_left)} error budget left")
            return f"{text}, estimated cost {d.estimated_cost:,.0f}" if d.estimated_cost else text
        case "RootCauseConfirmed":
            return _root_cause(d)
        case "NotificationSent":
            return f"Paged {d.receiver} ({d.kind}, {_page(d)}), attempt {d.attempt}"
        case "NotificationFailed":
            retry = "; will retry" if d.will_retry else "; giving up"
            return f"Paging {d.receiver} ({d.kind}, {_page(d)}) failed, attempt {d.attempt}: {_clip(d.error, 200)}{retry}"
        case "Escalated":
            return f"Escalated to level {d.level}: {', '.join(d.receivers)}"
        case "SilenceCreated":
            matchers = ", ".join(f"{m.label}{m.op}{m.value!r}" for m in d.matchers)
            return f"Silence by {d.by} until {d.ends_at:%Y-%m-%d %H:%M}Z: {matchers}: {_clip(d.comment)}"
        case "AlertSilenced":
            by = f"maintenance window {d.window}" if d.window else "silence"
            return f"Alert {d.alertname or d.fingerprint} swallowed by {by}"
        case "SilenceExpired":
            return f"Silence expired by {d.by}" + (f": {_clip(d.reason)}" if d.reason else "")
    return event.type


def _page(d: ev.NotificationSent | ev.NotificationFailed) -> str:
    return f"escalation level {d.level}" if d.level else d.trigger.replace("_", " ")


def _root_cause(d: ev.RootCauseConfirmed) -> str:
    again = " again" if d.supersedes == d.service else ""
    text = f"Root cause confirmed{again} by {d.by}: {d.service}" + (f" ({d.signal})" if d.signal else "")
    if d.supersedes and d.supersedes != d.service:
        text += f", replacing {d.supersedes}"
    return f"{text}. {_clip(d.note)}" if d.note else text


def _source_completed(d: ev.CorrelationSourceCompleted) -> str:
    tries = "1 attempt" if d.attempts == 1 else f"{d.attempts} attempts"
    match d.outcome:
        case "succeeded":
            return f"{d.source} succeeded ({tries}, {d.duration_ms} ms)"
        case "no_data":
            query = f": {_clip(d.queries[0], 200)}" if d.queries else ""
            return f"{d.source} returned no data{query}"
        case "unavailable":
            return f"{d.source} unavailable" + (f": {_clip(d.error)}" if d.error else "")
        case "timed_out":
            return f"{d.source} timed out after {d.duration_ms} ms ({tries})"
    return f"{d.source} failed after {tries}" + (f": {_clip(d.error)}" if d.error else "")


def _hypothesis_title(hypothesis: Any) -> str | None:
    # Typed hypotheses name a suspect service; free-form ones of older events, a sentence.
    service, signal, path = (field_of(hypothesis, key) for key in ("service", "signal", "path"))
    if isinstance(service, str) and service:
        text = f"{service} ({signal})" if signal else service
        if isinstance(path, list) and len(path) > 1:
            text += " via " + " → ".join(map(str, path))
        return _clip(text)
    for key in ("title", "summary", "cause", "description"):
        value = field_of(hypothesis, key)
        if isinstance(value, str) and value:
            return _clip(value)
    return None


async def apply_batch(conn: asyncpg.Connection, schema: str, events: Sequence[LoggedEvent]) -> list[LoggedEvent]:
    """Insert a timeline row per event; return the events not recorded before, in order.

    An (incident_id, version) already present is a redelivery or a repeat written
    by an at-least-once producer: it is left alone and left out of the result.
    """
    if not events:
        return []
    columns: list[list] = [[] for _ in range(11)]
    for item in events:
        e = item.event
        row = (e.incident_id, e.version, e.event_id, e.type, e.occurred_at, e.recorded_at,
               e.actor.model_dump_json(), summarize(e), item.data_json,
               item.partition, item.offset)
        for column, value in zip(columns, row):
            column.append(value)
    inserted = await conn.fetch(qualified(schema, INSERT), *columns)
    new = {(r["incident_id"], r["version"]) for r in inserted}
    return [item for item in events if item.key in new]
