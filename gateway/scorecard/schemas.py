"""Response bodies of the scorecard endpoint."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from pydantic import BaseModel, Field

from gateway.incidents.schemas import RootCause

COUNTED_RUN = ("the latest correlation run completed before the confirmation in the incident's log; "
               "runs completed later do not change it")


class HitRate(BaseModel):
    hits: int
    rate: float | None = Field(description="hits / n; null when no incident has a confirmed cause")


class TimeToHypothesis(BaseModel):
    named: int = Field(description="incidents where some run (of any) named the confirmed service")
    never_named: int
    median_s: float | None = Field(description="median seconds from opening to the first run that named it")


class ScoredIncident(BaseModel):
    incident_id: UUID
    title: str | None = None
    service: str | None = Field(default=None, description="the incident's own (symptom) service")
    status: str | None = None
    opened_at: datetime | None = None
    root_cause: RootCause
    run_id: UUID | None = Field(description="the run that counts (null: none had completed)")
    rank: int | None = Field(description="the confirmed service's place among the services that run named")
    top1: bool
    top3: bool
    first_named_run_id: UUID | None = None
    first_named_at: datetime | None = None
    time_to_first_hypothesis_s: float | None = None


class Scorecard(BaseModel):
    """How correlation did against the causes people confirmed."""

    n: int = Field(description="incidents with a confirmed root cause")
    top1: HitRate
    top3: HitRate
    time_to_first_hypothesis: TimeToHypothesis
    counted_run: str = COUNTED_RUN
    incidents: list[ScoredIncident] = Field(description="newest confirmation first, at most `limit`")
