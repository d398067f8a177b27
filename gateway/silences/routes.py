"""Silence endpoints: create and expire through the decider, list from the read model,
maintenance windows from settings."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Annotated, Any
from uuid import UUID, uuid4, uuid5

from fastapi import APIRouter, Header, Path, Query, Response
from fastapi.responses import JSONResponse

from contracts.commands import CreateSilence, ExpireSilence
from contracts.silences import Matcher
from foundation.maintenance import MaintenanceWindow, window_stream
from gateway.auth import Responder, Viewer
from gateway.commands import PENDING, CommandBus, decided
from gateway.deps import BusDep, PoolDep, SettingsDep
from gateway.fields import text
from gateway.problems import Problem, documented
from gateway.silences import queries
from gateway.silences.schemas import CreateSilenceBody, Silence, SilenceCreatedAnswer, SilencedAlert, SilenceList

router = APIRouter(tags=["silences"])
BASE = "/v1/silences"
RECENT = 20  # swallowed alerts shown per silence

# Silence ids derived from Idempotency-Key: the same key always names the same silence.
IDEMPOTENCY_NAMESPACE = UUID("0c9d4f5e-2b7a-5e31-8c6d-41f7a9e2b3d5")

SilenceId = Annotated[UUID, Path(description="silence id")]
IdempotencyKey = Annotated[
    text(1, 200) | None,
    Header(alias="Idempotency-Key", description="same key → same silence; it is created once"),
]


async def _decide(bus: CommandBus, command: CreateSilence | ExpireSilence) -> Any:
    return await decided(bus, command, f"{BASE}/{command.incident_id}")


@router.post(BASE, status_code=201, response_model=SilenceCreatedAnswer,
             responses={**documented(401, 403, 422, 503), **PENDING}, summary="Create a silence")
async def create_silence(body: CreateSilenceBody, user: Responder, bus: BusDep, response: Response,
                         idempotency_key: IdempotencyKey = None) -> Any:
    """Alerts matching every matcher between `starts_at` (default now) and `ends_at` open no
    incident and page no one; each is recorded on the silence. Answered once the intake
    will swallow an alert sent from now on."""
    now = datetime.now(UTC)
    starts_at = body.starts_at or now
    if body.ends_at <= starts_at:
        raise Problem.invalid("ends_at", "must be after starts_at (or after now, when starts_at is absent)")
    silence_id = uuid5(IDEMPOTENCY_NAMESPACE, idempotency_key) if idempotency_key else uuid4()
    command = CreateSilence(
        command_id=uuid4(), incident_id=silence_id, actor=user.actor, issued_at=now,
        idempotency_key=idempotency_key, starts_at=starts_at, ends_at=body.ends_at, comment=body.comment,
        matchers=[Matcher(**m.model_dump()) for m in body.matchers])
    outcome = await _decide(bus, command)
    if isinstance(outcome, JSONResponse):
        return outcome
    response.headers["Location"] = f"{BASE}/{silence_id}"
    return SilenceCreatedAnswer(id=silence_id, version=outcome.version)


@router.delete(BASE + "/{silence_id}", response_model=SilenceCreatedAnswer,
               responses={**documented(401, 403, 404, 422, 503), **PENDING}, summary="Expire a silence now")
async def expire_silence(silence_id: SilenceId, user: Responder, bus: BusDep) -> Any:
    """Ends the silence: the next matching alert opens an incident again. Expiring a silence
    that is over changes nothing. Maintenance windows are changed in settings."""
    command = ExpireSilence(command_id=uuid4(), incident_id=silence_id, actor=user.actor,
                            issued_at=datetime.now(UTC))
    outcome = await _decide(bus, command)
    if isinstance(outcome, JSONResponse):
        return outcome
    return SilenceCreatedAnswer(id=silence_id, version=outcome.version)


@router.get(BASE, response_model=SilenceList, responses=documented(401, 403, 422, 503),
            summary="Silences and maintenance windows")
async def list_silences(
    _: Viewer, pool: PoolDep, settings: SettingsDep,
    expired: Annotated[bool, Query(description="include expired and ended silences")] = False,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> SilenceList:
    """The current and pending silences (with `expired=true` the ended ones too), then every
    maintenance window from settings with its current or next opening."""
    now = datetime.now(UTC)
    windows = {window_stream(w.name): w for w in settings.silences.maintenance}
    async with pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
        rows = [dict(r) for r in await conn.fetch(queries.LIST_SILENCES, expired, limit)]
        window_rows = {r["silence_id"]: dict(r) for r in
                       await conn.fetch(queries.SELECT_MANY, list(windows))}
        ids = [r["silence_id"] for r in rows] + list(windows)
        recent = await conn.fetch(queries.RECENT_SWALLOWED, ids, RECENT)
    swallowed: dict[UUID, list[SilencedAlert]] = {}
    for r in recent:
        swallowed.setdefault(r["silence_id"], []).append(_swallowed(r))
    silences = [_silence(r, now, swallowed.get(r["silence_id"], [])) for r in rows if r["window_name"] is None]
    silences += [_window(stream, w, window_rows.get(stream), now, swallowed.get(stream, []))
                 for stream, w in windows.items()]
    return SilenceList(silences=silences)


@router.get(BASE + "/{silence_id}", response_model=Silence, responses=documented(401, 403, 404, 422, 503),
            summary="One silence and what it swallowed")
async def get_silence(silence_id: SilenceId, _: Viewer, pool: PoolDep, settings: SettingsDep) -> Silence:
    now = datetime.now(UTC)
    async with pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
        row = await conn.fetchrow(queries.SELECT_SILENCE, silence_id)
        recent = [_swallowed(r) for r in await conn.fetch(queries.RECENT_SWALLOWED, [silence_id], RECENT)]
    for window in settings.silences.maintenance:
        if window_stream(window.name) == silence_id:
            return _window(silence_id, window, dict(row) if row else None, now, recent)
    if row is None or row["window_name"] is not None:
        raise Problem.not_found(f"no silence {silence_id}")
    return _silence(dict(row), now, recent)


def _swallowed(row: Any) -> SilencedAlert:
    return SilencedAlert(fingerprint=row["fingerprint"], alertname=row["alertname"],
                         labels=json.loads(row["labels"]), starts_at=row["starts_at"], silenced_at=row["silenced_at"])


def _silence(row: dict[str, Any], now: datetime, recent: list[SilencedAlert]) -> Silence:
    if row["expired_at"] is not None or row["ends_at"] <= now:
        state = "expired"
    else:
        state = "active" if row["starts_at"] <= now else "pending"
    return Silence(id=row["silence_id"], kind="silence", state=state, matchers=json.loads(row["matchers"]),
                   starts_at=row["starts_at"], ends_at=row["ends_at"], comment=row["comment"],
                   created_by=row["created_by"], created_at=row["created_at"], expired_at=row["expired_at"],
                   expired_by=row["expired_by"], swallowed=row["swallowed"],
                   last_swallowed_at=row["last_swallowed_at"], version=row["version"], recent=recent)


def _window(stream: UUID, window: MaintenanceWindow, row: dict[str, Any] | None, now: datetime,
            recent: list[SilencedAlert]) -> Silence:
    opens, closes = window.current_or_next(now)
    return Silence(id=stream, kind="maintenance", state="active" if opens <= now else "pending",
                   matchers=[m.model_dump() for m in window.matchers], starts_at=opens, ends_at=closes,
                   comment=window.comment or None, window=window.name,
                   swallowed=row["swallowed"] if row else 0,
                   last_swallowed_at=row["last_swallowed_at"] if row else None,
                   version=row["version"] if row else 0, recent=recent)
