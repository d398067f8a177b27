"""Request and response bodies of the incident endpoints."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from contracts import Actor, Severity, Status
from gateway.fields import (
    MAX_INT4,
    Labels,
    LongText,
    Name,
    Reason,
    Title,
    text,
    whole_number,
)


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class OpenIncidentBody(Body):
    title: Title
    service: Name
    severity: Severity
    description: LongText | None = None
    labels: Labels = Field(default_factory=dict, max_length=100)


# "1" and true are not versions (JSON has numbers; a client sending text is wrong).
ExpectedVersion = Annotated[whole_number(0, MAX_INT4) | None, Field(default=None)]


class ChangeStatusBody(Body):
    to: Status
    reason: Reason | None = None
    expected_version: ExpectedVersion = None


class ChangeSeverityBody(Body):
    severity: Severity
    reason: Reason | None = None
    expected_version: ExpectedVersion = None


class AddNoteBody(Body):
    text: LongText


class RootCauseBody(Body):
    """The cause people confirmed: the suspect service and, if known, the signal that moved."""

    service: Name = Field(description="the service at fault, as hypotheses name it (e.g. `payments-db`)")
    signal: text(1, 100) | None = Field(default=None, description="latency, errors, traffic, saturation, "
                                                                  "restarts, deploys…")
    note: text(1, 2_000) | None = None


class CommandAccepted(BaseModel):
    """The incident as the decider left it after the command."""

    id: UUID
    status: Status | None
    version: int


class NoteAccepted(CommandAccepted):
    note_id: UUID


class CorrelationRequested(BaseModel):
    run_id: UUID
    command_id: UUID


class Durations(BaseModel):
    time_to_acknowledge_s: float | None = None
    time_to_mitigate_s: float | None = None
    time_to_resolve_s: float | None = None


class RootCause(BaseModel):
    """The root cause confirmed on an incident (the latest confirmation stands)."""

    service: str
    signal: str | None = None
    note: str | None = None
    confirmed_by: str
    confirmed_at: datetime
    version: int = Field(description="the incident version that confirmed it")
    supersedes: str | None = Field(default=None, description="the service an earlier confirmation named")


class Incident(BaseModel):
    id: UUID
    title: str
    service: str
    severity: Severity | str
    status: Status | str
    version: int
    description: str | None = None
    labels: dict[str, Any] = Field(default_factory=dict)
    opened_at: datetime | None = None
    opened_by: Actor | dict[str, Any] | None = None
    acknowledged_at: datetime | None = None
    acknowledged_by: str | None = None
    mitigated_at: datetime | None = None
    resolved_at: datetime | None = None
    updated_at: datetime | None = None
    durations: Durations
    alerts_firing: int = 0
    correlation: dict[str, Any] | None = Field(default=None, description="latest run: run_id, state, outcome, sources")
    top_hypothesis: dict[str, Any] | None = None
    impact: dict[str, Any] | None = None
    root_cause: RootCause | None = None


class IncidentPage(BaseModel):
    items: list[Incident]
    next_cursor: str | None = Field(description="pass as `cursor` for the next page; null on the last page")


class TimelineEntry(BaseModel):
    version: int
    event_id: UUID
    type: str
    occurred_at: datetime
    recorded_at: datetime | None = None
    actor: dict[str, Any] | None = None
    summary: str | None = None
    data: dict[str, Any] = Field(default_factory=dict)


class Notification(BaseModel):
    """One entry of the delivery ledger: an attempt to page a receiver, or an escalation."""

    type: Literal["NotificationSent", "NotificationFailed", "Escalated"]
    version: int = Field(description="the incident's version this entry was recorded at")
    occurred_at: datetime
    level: int = Field(description="0: the route's own receivers; N: escalation level N")
    trigger: str = Field(description="opened, reopened, severity_raised, alert or escalation")
    notification_id: UUID | None = Field(default=None, description="the page's id, sent as Idempotency-Key")
    receiver: str | None = None
    kind: Literal["webhook", "slack", "teams", "email"] | None = None
    attempt: int | None = None
    status: int | None = Field(default=None, description="the receiver's HTTP status, when it answered")
    error: str | None = None
    will_retry: bool | None = None
    receivers: list[str] | None = Field(default=None, description="Escalated: who that level pages")


class Finding(BaseModel):
    finding_id: UUID
    run_id: UUID | None = None
    source: str
    kind: str
    summary: str
    confidence: float
    changed_at: datetime | None = None
    evidence: dict[str, Any] = Field(default_factory=dict)
    after_resolution: bool = False
    recorded_at: datetime | None = None
    service: str | None = Field(default=None, description="the service the finding is about (absent before schema version 2)")
    signal: str | None = Field(default=None, description="what moved there: latency, errors, log_errors...")
    chart: str | None = Field(default=None, description="the path of this finding's chart (SVG) when its evidence "
                                                        "holds a series; null otherwise")


class SourceProgress(BaseModel):
    source: str
    state: str
    attempts: int | None = None
    duration_ms: int | None = None
    error: str | None = None
    queries: list[Any] | None = None
    started_at: datetime | None = None
    completed_at: datetime | None = None


class CorrelationRun(BaseModel):
    run_id: UUID
    state: str
    outcome: str | None = None
    trigger: str | None = None
    started_at: datetime | None = None
    completed_at: datetime | None = None
    hypotheses: list[Any] = Field(default_factory=list)
    sources: list[SourceProgress]
    graph: str | None = Field(default=None, description="the path of the SVG of the incident's service graph with "
                                                        "this run's suspects, when its hypotheses name any")
