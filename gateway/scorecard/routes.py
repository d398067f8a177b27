"""Scorecard endpoint."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from gateway.auth import Viewer
from gateway.deps import PoolDep
from gateway.fields import Name
from gateway.problems import documented
from gateway.scorecard import queries
from gateway.scorecard.schemas import (
    HitRate,
    Scorecard,
    ScoredIncident,
    TimeToHypothesis,
)

router = APIRouter(tags=["scorecard"])


def _rate(hits: int, n: int) -> HitRate:
    return HitRate(hits=hits, rate=hits / n if n else None)


@router.get("/v1/scorecard", response_model=Scorecard, responses=documented(401, 403, 422, 503),
            summary="How often correlation named the confirmed root cause, and how soon")
async def scorecard(
    _: Viewer, pool: PoolDep,
    service: Annotated[Name | None, Query(description="only incidents of this (symptom) service")] = None,
    limit: Annotated[int, Query(ge=1, le=1000, description="incidents listed, newest confirmation first")] = 100,
) -> Scorecard:
    """Over incidents with a confirmed root cause: top-1 / top-3 hit rates of the run that counts
    (the latest completed before the confirmation) and the time from opening to the first run
    that named the confirmed service."""
    async with pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
        totals = await conn.fetchrow(queries.SELECT_TOTALS, service)
        rows = await conn.fetch(queries.SELECT_SCORED, service, limit)
    n = totals["n"]
    return Scorecard(
        n=n, top1=_rate(totals["top1_hits"], n), top3=_rate(totals["top3_hits"], n),
        time_to_first_hypothesis=TimeToHypothesis(named=totals["named"], never_named=n - totals["named"],
                                                  median_s=totals["median_s"]),
        incidents=[ScoredIncident.model_validate(dict(row)) for row in rows])
