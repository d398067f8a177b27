"""Incident endpoints: HTTP in, a command to the decider or a read-model query out."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Annotated, Any
from uuid import UUID, uuid4, uuid5

import asyncpg
from fastapi import APIRouter, Depends, Header, Path, Query, Response
from fastapi.responses import JSONResponse

from contracts import CommandBase, CommandOutcome, Severity, Status
from contracts.commands import (
    AcknowledgeIncident,
    AddNote,
    ChangeSeverity,
    ChangeStatus,
    ConfirmRootCause,
    OpenIncident,
    StartCorrelation,
)
from gateway import cursor
from gateway.auth import Responder, Viewer
from gateway.changes import ChangeFeed
from gateway.commands import PENDING, CommandBus, decided
from gateway.deps import BusDep, EventLogDep, FeedDep, PoolDep, SettingsDep
from gateway.eventlog import EventNotInLog
from gateway.fields import MAX_INT4, Name, text
from gateway.incidents import queries
from gateway.incidents.schemas import (
    AddNoteBody,
    ChangeSeverityBody,
    ChangeStatusBody,
    CommandAccepted,
    CorrelationRequested,
    CorrelationRun,
    Durations,
    Finding,
    Notification,
    Incident,
    IncidentPage,
    NoteAccepted,
    OpenIncidentBody,
    RootCauseBody,
    SourceProgress,
    TimelineEntry,
)
from gateway.problems import Problem, documented
from projections.history.evidence_chart import FindingFacts, has_chart
from projections.history.incident_graph import suspects_of

router = APIRouter(tags=["incidents"])
BASE = "/v1/incidents"

# Incident ids derived from Idempotency-Key: the same key always names the same incident.
IDEMPOTENCY_NAMESPACE = UUID("6f1c1a52-4d0e-5b8e-9a57-3c1f0e2d7a10")

IncidentId = Annotated[UUID, Path(description="incident id")]
IdempotencyKey = Annotated[
    text(1, 200) | None,
    Header(alias="Idempotency-Key", description="same key → same incident; nothing is appended twice"),
]

COMMAND_ERRORS = documented(401, 403, 404, 409, 422, 503)
QUERY_ERRORS = documented(401, 403, 404, 422, 503)


# -- commands ------------------------------------------------------------------------


def _now() -> datetime:
    return datetime.now(UTC)


async def _decide(bus: CommandBus, command: CommandBase) -> CommandOutcome | JSONResponse:
    """The accepted outcome, a 202 response when it is not known in time; rejections raise."""
    return await decided(bus, command, f"{BASE}/{command.incident_id}")


def _accepted(outcome: CommandOutcome) -> CommandAccepted:
    return CommandAccepted(id=outcome.incident_id, status=outcome.status, version=outcome.version)


@router.post(BASE, status_code=201, response_model=CommandAccepted,
             responses={**COMMAND_ERRORS, **PENDING}, summary="Open an incident")
async def open_incident(
    body: OpenIncidentBody, user: Responder, bus: BusDep, response: Response,
    idempotency_key: IdempotencyKey = None,
) -> Any:
    incident_id = uuid5(IDEMPOTENCY_NAMESPACE, idempotency_key) if idempotency_key else uuid4()
    command = OpenIncident(
        command_id=uuid4(), incident_id=incident_id, actor=user.actor, issued_at=_now(),
        idempotency_key=idempotency_key, **body.model_dump(),
    )
    outcome = await _decide(bus, command)
    if isinstance(outcome, JSONResponse):
        return outcome
    response.headers["Location"] = f"/v1/incidents/{incident_id}"
    if outcome.events == 0:
        response.headers["Idempotent-Replayed"] = "true"
    return _accepted(outcome)


@router.post(BASE + "/{incident_id}/acknowledge", response_model=CommandAccepted,
             responses={**COMMAND_ERRORS, **PENDING}, summary="Acknowledge an incident")
async def acknowledge(incident_id: IncidentId, user: Responder, bus: BusDep) -> Any:
    command = AcknowledgeIncident(command_id=uuid4(), incident_id=incident_id, actor=user.actor, issued_at=_now())
    outcome = await _decide(bus, command)
    return outcome if isinstance(outcome, JSONResponse) else _accepted(outcome)


@router.post(BASE + "/{incident_id}/status", response_model=CommandAccepted,
             responses={**COMMAND_ERRORS, **PENDING}, summary="Move an incident to another status")
async def change_status(incident_id: IncidentId, body: ChangeStatusBody, user: Responder, bus: BusDep) -> Any:
    command = ChangeStatus(
        command_id=uuid4(), incident_id=incident_id, actor=user.actor, issued_at=_now(),
        to=body.to, reason=body.reason, expected_version=body.expected_version,
    )
    outcome = await _decide(bus, command)
    return outcome if isinstance(outcome, JSONResponse) else _accepted(outcome)


@router.post(BASE + "/{incident_id}/severity", response_model=CommandAccepted,
             responses={**COMMAND_ERRORS, **PENDING}, summary="Change an incident's severity")
async def change_severity(incident_id: IncidentId, body: ChangeSeverityBody, user: Responder, bus: BusDep) -> Any:
    command = ChangeSeverity(
        command_id=uuid4(), incident_id=incident_id, actor=user.actor, issued_at=_now(),
        severity=body.severity, reason=body.reason, expected_version=body.expected_version,
    )
    outcome = await _decide(bus, command)
    return outcome if isinstance(outcome, JSONResponse) else _accepted(outcome)


@router.post(BASE + "/{incident_id}/notes", status_code=201, response_model=NoteAccepted,
             responses={**COMMAND_ERRORS, **PENDING}, summary="Add a note")
async def add_note(incident_id: IncidentId, body: AddNoteBody, user: Responder, bus: BusDep) -> Any:
    command = AddNote(
        command_id=uuid4(), incident_id=incident_id, actor=user.actor, issued_at=_now(),
        note_id=uuid4(), text=body.text,
    )
    outcome = await _decide(bus, command)
    if isinstance(outcome, JSONResponse):
        return outcome
    return NoteAccepted(id=outcome.incident_id, status=outcome.status, version=outcome.version,
                        note_id=command.note_id)


@router.post(BASE + "/{incident_id}/root-cause", response_model=CommandAccepted,
             responses={**COMMAND_ERRORS, **PENDING}, summary="Confirm the incident's root cause")
async def confirm_root_cause(incident_id: IncidentId, body: RootCauseBody, user: Responder, bus: BusDep) -> Any:
    """Any status (a cause is often confirmed after resolving). The same cause again appends
    nothing; another one supersedes it. Scored on `GET /v1/scorecard`."""
    command = ConfirmRootCause(
        command_id=uuid4(), incident_id=incident_id, actor=user.actor, issued_at=_now(),
        service=body.service, signal=body.signal, note=body.note,
    )
    outcome = await _decide(bus, command)
    return outcome if isinstance(outcome, JSONResponse) else _accepted(outcome)


@router.post(BASE + "/{incident_id}/correlation", status_code=202, response_model=CorrelationRequested,
             responses=COMMAND_ERRORS, summary="Start a new correlation run")
async def start_correlation(incident_id: IncidentId, user: Responder, bus: BusDep, settings: SettingsDep) -> Any:
    command = StartCorrelation(
        command_id=uuid4(), incident_id=incident_id, actor=user.actor, issued_at=_now(),
        run_id=uuid4(), sources=list(settings.correlation.sources), trigger="manual",
    )
    # Rejections raise; accepted or not yet known, the run is requested and its progress is
    # on the stream and at GET .../correlation.
    await _decide(bus, command)
    return CorrelationRequested(run_id=command.run_id, command_id=command.command_id)


# -- queries -------------------------------------------------------------------------


def _incident(row: asyncpg.Record) -> Incident:
    data = dict(row)
    data["durations"] = Durations(
        time_to_acknowledge_s=data.pop("time_to_acknowledge_s"),
        time_to_mitigate_s=data.pop("time_to_mitigate_s"),
        time_to_resolve_s=data.pop("time_to_resolve_s"),
    )
    data["labels"] = data.get("labels") or {}
    data["alerts_firing"] = data.get("alerts_firing") or 0
    return Incident.model_validate(data)


MinVersion = Annotated[int | None, Query(
    ge=1, le=MAX_INT4, description="wait (bounded) until the read model has reached this version")]


async def _read_at_least(pool: asyncpg.Pool, feed: ChangeFeed, wait_s: float, incident_id: UUID,
                         min_version: int | None, query: str) -> asyncpg.Record | None:
    """The row `query` reads for the incident, once its version is at least `min_version`
    or, after waiting `wait_s` for that, as it is."""
    if min_version is None:
        return await pool.fetchrow(query, incident_id)
    # Watch first, then read: a change committed in between still wakes us.
    async with feed.watch_version(incident_id, min_version) as watch:
        row = await pool.fetchrow(query, incident_id)
        if row is None or row["version"] < min_version:
            try:
                await asyncio.wait_for(asyncio.shield(watch.reached), wait_s)
            except TimeoutError:
                pass
            row = await pool.fetchrow(query, incident_id)
    return row


def _found(row: asyncpg.Record | None, incident_id: UUID, min_version: int | None, response: Response) -> asyncpg.Record:
    if row is None:
        raise Problem.not_found(f"no incident {incident_id}")
    if min_version is not None and row["version"] < min_version:
        # The wait is bounded: answer with what there is, and say it is behind.
        response.headers["Warroom-Version-Behind"] = "true"
    return row


async def known_incident(
    incident_id: IncidentId, pool: PoolDep, feed: FeedDep, settings: SettingsDep, response: Response,
    min_version: MinVersion = None,
) -> UUID:
    """The incident id once the read model knows the incident (at `min_version`); 404 otherwise."""
    row = await _read_at_least(pool, feed, settings.gateway.min_version_wait_s, incident_id, min_version,
                               queries.SELECT_VERSION)
    return _found(row, incident_id, min_version, response)["id"]


KnownIncident = Annotated[UUID, Depends(known_incident)]


@router.get(BASE, response_model=IncidentPage, responses=QUERY_ERRORS, summary="List incidents, newest first")
async def list_incidents(
    _: Viewer, pool: PoolDep, settings: SettingsDep,
    status: Annotated[list[Status] | None, Query(description="one or more statuses")] = None,
    service: Annotated[Name | None, Query()] = None,
    severity: Annotated[list[Severity] | None, Query(description="one or more severities")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_INT4, description="page size; larger values are capped at gateway.page_limit_max")] = 50,
    cursor_: Annotated[text(1, 500) | None, Query(alias="cursor", description="next_cursor of the previous page")] = None,
) -> IncidentPage:
    limit = min(limit, settings.gateway.page_limit_max)
    after_at, after_id = None, None
    if cursor_ is not None:
        try:
            after_at, after_id = cursor.decode(cursor_)
        except cursor.CursorError as err:
            raise Problem.invalid("cursor", str(err)) from None
    rows = await pool.fetch(
        queries.LIST_INCIDENTS,
        [s.value for s in status] if status else None, service,
        [s.value for s in severity] if severity else None,
        after_at, after_id, limit + 1,
    )
    items = [_incident(row) for row in rows[:limit]]
    next_cursor = None
    if len(rows) > limit and items[-1].opened_at is not None:
        next_cursor = cursor.encode(items[-1].opened_at, items[-1].id)
    return IncidentPage(items=items, next_cursor=next_cursor)


@router.get(BASE + "/{incident_id}", response_model=Incident, responses=QUERY_ERRORS, summary="One incident")
async def get_incident(
    incident_id: IncidentId, _: Viewer, pool: PoolDep, feed: FeedDep, settings: SettingsDep, response: Response,
    min_version: MinVersion = None,
) -> Incident:
    row = await _read_at_least(pool, feed, settings.gateway.min_version_wait_s, incident_id, min_version,
                               queries.SELECT_INCIDENT)
    return _incident(_found(row, incident_id, min_version, response))


@router.get(BASE + "/{incident_id}/timeline", response_model=list[TimelineEntry], responses=QUERY_ERRORS,
            summary="The incident's timeline, oldest first")
async def timeline(
    _: Viewer, incident_id: KnownIncident, pool: PoolDep,
    after_version: Annotated[int, Query(ge=0, le=MAX_INT4)] = 0,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
) -> list[TimelineEntry]:
    rows = await pool.fetch(queries.SELECT_TIMELINE, incident_id, after_version, limit)
    return [TimelineEntry.model_validate(dict(row)) for row in rows]


@router.get(BASE + "/{incident_id}/events", responses={**QUERY_ERRORS, 200: {
    "description": "the event envelopes exactly as stored in the log, in version order",
    "content": {"application/json": {"schema": {"type": "array", "items": {"type": "object"}}}}}},
    summary="The incident's raw events, read from the log itself")
async def events(
    _: Viewer, incident_id: KnownIncident, pool: PoolDep, event_log: EventLogDep,
    after_version: Annotated[int, Query(ge=0, le=MAX_INT4)] = 0,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
) -> Response:
    rows = await pool.fetch(queries.SELECT_EVENT_POSITIONS, incident_id, after_version, limit)
    try:
        values = await event_log.read_incident(incident_id, [tuple(row) for row in rows])
    except EventNotInLog as err:
        raise Problem.unavailable(f"the log does not hold an event the read model names: {err}") from None
    except TimeoutError:
        raise Problem.unavailable("the log did not deliver the events in time") from None
    return Response(b"[" + b",".join(values) + b"]", media_type="application/json")


def chart_path(incident_id: UUID, finding_id: UUID) -> str:
    return f"{BASE}/{incident_id}/findings/{finding_id}/chart"


def graph_path(incident_id: UUID, run_id: UUID) -> str:
    return f"{BASE}/{incident_id}/graph?run_id={run_id}"


@router.get(BASE + "/{incident_id}/findings", response_model=list[Finding], responses=QUERY_ERRORS,
            summary="Findings, most confident first, with evidence")
async def findings(_: Viewer, incident_id: KnownIncident, pool: PoolDep) -> list[Finding]:
    """A finding whose evidence holds a series names its chart (`chart`)."""
    rows = await pool.fetch(queries.SELECT_FINDINGS, incident_id)
    return [Finding.model_validate({**dict(row), "chart": chart_path(incident_id, row["finding_id"])
                                    if has_chart(FindingFacts.of(dict(row))) else None}) for row in rows]


@router.get(BASE + "/{incident_id}/notifications", response_model=list[Notification], responses=QUERY_ERRORS,
            summary="The delivery ledger: every page attempt and escalation, in log order")
async def notifications(_: Viewer, incident_id: KnownIncident, pool: PoolDep) -> list[Notification]:
    rows = await pool.fetch(queries.SELECT_NOTIFICATIONS, incident_id)
    return [Notification.model_validate(dict(row)) for row in rows]


@router.get(BASE + "/{incident_id}/correlation", response_model=list[CorrelationRun], responses=QUERY_ERRORS,
            summary="Correlation runs, newest first, with per-source progress")
async def correlation(_: Viewer, incident_id: KnownIncident, pool: PoolDep) -> list[CorrelationRun]:
    """A run whose hypotheses name suspects names the SVG of its part of the service graph (`graph`)."""
    runs = await pool.fetch(queries.SELECT_RUNS, incident_id)
    sources = await pool.fetch(queries.SELECT_RUN_SOURCES, [run["run_id"] for run in runs]) if runs else []
    by_run: dict[UUID, list[SourceProgress]] = {}
    for row in sources:
        data = dict(row)
        by_run.setdefault(data.pop("run_id"), []).append(SourceProgress.model_validate(data))
    return [
        CorrelationRun.model_validate({**dict(run), "hypotheses": run["hypotheses"] or [],
                                       "sources": by_run.get(run["run_id"], []),
                                       "graph": graph_path(incident_id, run["run_id"])
                                       if suspects_of(run["hypotheses"] or []) else None})
        for run in runs
    ]
