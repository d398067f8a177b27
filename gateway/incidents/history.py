"""An incident's history, read from the log itself: its state at any instant, an audit
of its hash chain, and its postmortem.

The read model only says *where* the incident's events are (the timeline's partition
and offset); the events are fetched from Kafka and folded or checked here, so what
these endpoints answer is what the log holds, not what a projection made of it.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from itertools import takewhile
from typing import Annotated
from uuid import UUID

import asyncpg
from fastapi import APIRouter, Header, Query, Response
from pydantic import BaseModel, Field, ValidationError

from contracts import Severity, Status
from contracts.events import EventEnvelope
from gateway.auth import Viewer
from gateway.deps import EventLogDep, PoolDep
from gateway.eventlog import EventLog, EventNotInLog
from gateway.fields import Instant
from gateway.incidents.routes import BASE, QUERY_ERRORS, KnownIncident, _incident
from gateway.incidents.schemas import Incident
from gateway.problems import Problem
from projections import incidents as incident_rows
from projections.history.audit import audit_records
from projections.history.postmortem import build, to_json
from projections.history.postmortem_markdown import render
from streams.incident_log import state_as_of

router = APIRouter(tags=["incidents"])

SELECT_POSITIONS = """
select version, kafka_partition, kafka_offset from timeline where incident_id = $1 order by version
"""
LOG_READ_TIMEOUT_S = 30.0
MARKDOWN = "text/markdown; charset=utf-8"


class RunAsOf(BaseModel):
    run_id: UUID
    sources: list[str]
    started: list[str]
    completed: list[str]
    done: bool


class LastEvent(BaseModel):
    version: int
    type: str
    occurred_at: datetime
    recorded_at: datetime
    hash: str


class IncidentAsOf(BaseModel):
    """The incident as the log held it at `as_of`: the decider's state, and the read
    model's row as it stood then."""

    id: UUID
    as_of: datetime
    title: str
    service: str
    status: Status
    severity: Severity
    version: int
    acknowledged: bool
    alerts_firing: int
    firing: list[str] = Field(description="fingerprints of the alerts firing at as_of")
    correlation_runs: list[RunAsOf]
    last_event: LastEvent
    incident: Incident = Field(description="the incident's read-model view as it stood at as_of")


class AuditReport(BaseModel):
    valid: bool
    events: int = Field(description="distinct versions checked")
    first_bad_version: int | None = None
    problem: str | None = None
    last_hash: str | None = None


async def log_events(pool: asyncpg.Pool, event_log: EventLog, incident_id: UUID) -> list[bytes]:
    """Every stored record of the incident, in version order, fetched from Kafka at the
    positions the timeline names."""
    rows = await pool.fetch(SELECT_POSITIONS, incident_id)
    try:
        return await event_log.read_incident(incident_id, [tuple(row) for row in rows], timeout_s=LOG_READ_TIMEOUT_S)
    except EventNotInLog as err:
        raise Problem.unavailable(f"the log does not hold an event the read model names: {err}") from None
    except TimeoutError:
        raise Problem.unavailable("the log did not deliver the events in time") from None


def _decoded(values: list[bytes]) -> list[EventEnvelope]:
    try:
        return [EventEnvelope.model_validate_json(value) for value in values]
    except ValidationError:
        # The projector decoded every event it recorded a position for: the log changed since.
        raise Problem.unavailable("a stored event of this incident is no longer a valid event; "
                                  "GET .../audit tells which") from None


AsOf = Annotated[Instant | None, Query(
    description="an RFC 3339 instant with an offset; the events recorded at or before it are folded "
                "(default: now)")]


@router.get(BASE + "/{incident_id}/state", response_model=IncidentAsOf, responses=QUERY_ERRORS,
            summary="The incident as it stood at an instant, folded from the log")
async def state(_: Viewer, incident_id: KnownIncident, pool: PoolDep, event_log: EventLogDep,
                as_of: AsOf = None) -> IncidentAsOf:
    instant = as_of or datetime.now(UTC)
    events = _decoded(await log_events(pool, event_log, incident_id))
    # Recorded, not occurred, and up to the first event recorded later: the state is
    # always a prefix of the log, as `state_as_of` folds it.
    prefix = list(takewhile(lambda e: e.recorded_at <= instant, events))
    folded = state_as_of(events, instant)
    if folded is None or not prefix:
        raise Problem.not_found(f"incident {incident_id} was not yet opened at {instant.isoformat()}")
    row = None
    for event in prefix:
        row = incident_rows.evolve(row, event)
    assert row is not None
    last = prefix[-1]
    return IncidentAsOf(
        id=incident_id, as_of=instant, title=folded.title, service=folded.service, status=folded.status,
        severity=folded.severity, version=folded.version, acknowledged=folded.acknowledged,
        alerts_firing=len(folded.firing), firing=sorted(folded.firing),
        correlation_runs=[RunAsOf(run_id=r.run_id, sources=list(r.sources), started=sorted(r.started),
                                  completed=sorted(r.completed), done=r.done) for r in folded.runs],
        last_event=LastEvent(version=last.version, type=last.type, occurred_at=last.occurred_at,
                             recorded_at=last.recorded_at, hash=last.hash),
        incident=_incident(row),
    )


@router.get(BASE + "/{incident_id}/audit", response_model=AuditReport, responses=QUERY_ERRORS,
            summary="Check the incident's hash chain and versions, on the events in the log")
async def audit(_: Viewer, incident_id: KnownIncident, pool: PoolDep, event_log: EventLogDep) -> AuditReport:
    result = audit_records(await log_events(pool, event_log, incident_id))
    return AuditReport(**result.to_json())


@router.get(BASE + "/{incident_id}/postmortem", responses={**QUERY_ERRORS, 200: {
    "description": "the postmortem as Markdown, or as JSON with `Accept: application/json`",
    "content": {"text/markdown": {"schema": {"type": "string"}},
                "application/json": {"schema": {"type": "object"}}}}},
    summary="A postmortem document, built from the incident's log")
async def postmortem(_: Viewer, incident_id: KnownIncident, pool: PoolDep, event_log: EventLogDep,
                     accept: Annotated[str | None, Header()] = None) -> Response:
    events = _decoded(await log_events(pool, event_log, incident_id))
    try:
        document = build(events)
    except ValueError as err:
        raise Problem.not_found(str(err)) from None
    if _wants_json(accept):
        return Response(json.dumps(to_json(document), ensure_ascii=False), media_type="application/json")
    return Response(render(document), media_type=MARKDOWN)


def _wants_json(accept: str | None) -> bool:
    """JSON when the client prefers it to Markdown; Markdown otherwise (and for */*)."""
    if not accept:
        return False
    best: dict[str, float] = {}
    for part in accept.split(","):
        media, *params = [p.strip() for p in part.split(";")]
        quality = 1.0
        for param in params:
            if param.startswith("q="):
                try:
                    quality = float(param[2:])
                except ValueError:
                    quality = 0.0
        best[media.lower()] = max(quality, best.get(media.lower(), 0.0))
    as_json = max(best.get("application/json", 0.0), best.get("application/*", 0.0) * 0.99)
    as_markdown = max(best.get("text/markdown", 0.0), best.get("text/*", 0.0) * 0.99, best.get("*/*", 0.0) * 0.98)
    return as_json > as_markdown
