"""Request and response bodies of the silences endpoints."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from contracts.silences import MatcherOp, check_regex
from gateway.fields import Instant, LongText, text


class MatcherBody(BaseModel):
    """One label matcher: `=` equal, `!=` not equal, `=~` / `!~` the whole label (does not)
    match the regular expression. A label the alert lacks reads as the empty string."""

    model_config = ConfigDict(extra="forbid")

    label: Annotated[str, StringConstraints(min_length=1, max_length=200, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")]
    op: MatcherOp
    value: text(0, 1_000)  # type: ignore[valid-type]

    @model_validator(mode="after")
    def _compiles(self) -> MatcherBody:
        check_regex(self.op, self.value)
        return self


class CreateSilenceBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    matchers: list[MatcherBody] = Field(min_length=1, max_length=50)
    starts_at: Instant | None = Field(default=None, description="default: now")
    ends_at: Instant
    comment: LongText


class SilenceCreatedAnswer(BaseModel):
    id: UUID
    version: int


SilenceState = Literal["pending", "active", "expired"]


class SilencedAlert(BaseModel):
    fingerprint: str
    alertname: str | None
    labels: dict[str, str]
    starts_at: datetime
    silenced_at: datetime


class Silence(BaseModel):
    """A silence created through the API, or a maintenance window from settings (`window`
    set: its `starts_at`/`ends_at` are its current or next opening)."""

    id: UUID
    kind: Literal["silence", "maintenance"]
    state: SilenceState
    matchers: list[MatcherBody]
    starts_at: datetime | None
    ends_at: datetime | None
    comment: str | None
    window: str | None = None
    created_by: str | None = None
    created_at: datetime | None = None
    expired_at: datetime | None = None
    expired_by: str | None = None
    swallowed: int = 0
    last_swallowed_at: datetime | None = None
    version: int = 0
    recent: list[SilencedAlert] = Field(default_factory=list, description="what it swallowed, newest first")


class SilenceList(BaseModel):
    silences: list[Silence]
