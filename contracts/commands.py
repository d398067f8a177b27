"""Commands: requests to change an incident or a silence. Only the decider turns them into events."""

from __future__ import annotations

from typing import Annotated, Any, Literal, Union
from uuid import UUID

from pydantic import Field, TypeAdapter

from contracts.common import Actor, Message, Severity, Status, UtcDatetime
from contracts.hypotheses import Hypothesis
from contracts.silences import Matcher


class CommandBase(Message):
    command_id: UUID
    incident_id: UUID
    actor: Actor
    issued_at: UtcDatetime
    expected_version: int | None = Field(default=None, ge=0)
    idempotency_key: str | None = Field(default=None, max_length=200)
    correlation_id: UUID | None = None


class OpenIncident(CommandBase):
    type: Literal["OpenIncident"] = "OpenIncident"
    title: str = Field(min_length=1, max_length=300)
    service: str = Field(min_length=1, max_length=200)
    severity: Severity
    description: str | None = Field(default=None, max_length=20_000)
    labels: dict[str, str] = Field(default_factory=dict)


class AcknowledgeIncident(CommandBase):
    type: Literal["AcknowledgeIncident"] = "AcknowledgeIncident"


class ChangeStatus(CommandBase):
    type: Literal["ChangeStatus"] = "ChangeStatus"
    to: Status
    reason: str | None = Field(default=None, max_length=2_000)


class ChangeSeverity(CommandBase):
    type: Literal["ChangeSeverity"] = "ChangeSeverity"
    severity: Severity
    reason: str | None = Field(default=None, max_length=2_000)


class AddNote(CommandBase):
    type: Literal["AddNote"] = "AddNote"
    note_id: UUID
    text: str = Field(min_length=1, max_length=20_000)


class AttachAlert(CommandBase):
    type: Literal["AttachAlert"] = "AttachAlert"
    fingerprint: str = Field(min_length=1, max_length=200)
    alertname: str | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)
    starts_at: UtcDatetime
    source: str | None = None


class ResolveAlert(CommandBase):
    type: Literal["ResolveAlert"] = "ResolveAlert"
    fingerprint: str = Field(min_length=1, max_length=200)
    ends_at: UtcDatetime
    mitigate_when_last: bool = True


class StartCorrelation(CommandBase):
    type: Literal["StartCorrelation"] = "StartCorrelation"
    run_id: UUID
    sources: list[str]
    trigger: str = "manual"


class StartCorrelationSource(CommandBase):
    type: Literal["StartCorrelationSource"] = "StartCorrelationSource"
    run_id: UUID
    source: str


class CompleteCorrelationSource(CommandBase):
    type: Literal["CompleteCorrelationSource"] = "CompleteCorrelationSource"
    run_id: UUID
    source: str
    outcome: Literal["succeeded", "failed", "no_data", "unavailable", "timed_out"]
    attempts: int = Field(ge=0)
    duration_ms: int = Field(ge=0)
    error: str | None = None
    queries: list[str] = Field(default_factory=list)


class RecordFinding(CommandBase):
    type: Literal["RecordFinding"] = "RecordFinding"
    run_id: UUID
    finding_id: UUID
    source: str
    kind: str
    summary: str
    confidence: float = Field(ge=0, le=1)
    changed_at: UtcDatetime | None = None
    evidence: dict[str, Any] = Field(default_factory=dict)
    service: str = Field(min_length=1, max_length=200)  # the service the finding is about
    signal: str = Field(min_length=1, max_length=100)  # what moved there: latency, errors, log_errors...


class CompleteCorrelation(CommandBase):
    type: Literal["CompleteCorrelation"] = "CompleteCorrelation"
    run_id: UUID
    outcome: Literal["succeeded", "partial", "failed"]
    hypotheses: list[Hypothesis] = Field(default_factory=list)


class ConfirmRootCause(CommandBase):
    """A person names the service (and, if known, the signal) that caused the incident.

    Confirming the same cause again changes nothing; another one supersedes it."""

    type: Literal["ConfirmRootCause"] = "ConfirmRootCause"
    service: str = Field(min_length=1, max_length=200)
    signal: str | None = Field(default=None, min_length=1, max_length=100)
    note: str | None = Field(default=None, min_length=1, max_length=2_000)


class AssessImpact(CommandBase):
    type: Literal["AssessImpact"] = "AssessImpact"
    slo: str
    burn_rate: float
    error_budget_left: float
    estimated_cost: float | None = None
    window: str | None = None


NotificationTrigger = Literal["opened", "reopened", "severity_raised", "alert", "escalation"]


class RecordNotification(CommandBase):
    """The notifier reports one delivery attempt: `sent`, or `failed` with the error.

    `notification_id` is the same for every attempt of one page (it is the receiver's
    `Idempotency-Key`); `trigger_event_id` is the event that made the page owed."""

    type: Literal["RecordNotification"] = "RecordNotification"
    notification_id: UUID
    receiver: str = Field(min_length=1, max_length=200)
    kind: Literal["webhook", "slack", "teams", "email"]
    attempt: int = Field(ge=1)
    outcome: Literal["sent", "failed"]
    status: int | None = Field(default=None, ge=100, le=599)  # the receiver's HTTP status, if any
    level: int = Field(ge=0)
    trigger: NotificationTrigger
    trigger_event_id: UUID
    error: str | None = Field(default=None, max_length=2_000)
    will_retry: bool = False


class Escalate(CommandBase):
    """Nobody acknowledged within a route's delay: page escalation `level` (1 = the first)."""

    type: Literal["Escalate"] = "Escalate"
    level: int = Field(ge=1)
    receivers: list[str] = Field(min_length=1)
    trigger_event_id: UUID


class CreateSilence(CommandBase):
    """Silence alerts matching every matcher from `starts_at` until `ends_at`.

    A silence is a stream of its own: `incident_id` is the silence's id (SPEC §15)."""

    type: Literal["CreateSilence"] = "CreateSilence"
    matchers: list[Matcher] = Field(min_length=1, max_length=50)
    starts_at: UtcDatetime
    ends_at: UtcDatetime
    comment: str = Field(min_length=1, max_length=2_000)


class ExpireSilence(CommandBase):
    """End silence `incident_id` now (expiring an expired silence changes nothing)."""

    type: Literal["ExpireSilence"] = "ExpireSilence"
    reason: str | None = Field(default=None, max_length=2_000)


class RecordSilencedAlert(CommandBase):
    """The intake swallowed a firing alert because silence `incident_id` matched it, or,
    with `window` set, the recurring maintenance window of that name (whose stream id is
    derived from its name)."""

    type: Literal["RecordSilencedAlert"] = "RecordSilencedAlert"
    fingerprint: str = Field(min_length=1, max_length=200)
    alertname: str | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    starts_at: UtcDatetime
    window: str | None = Field(default=None, min_length=1, max_length=200)


SILENCE_COMMANDS: tuple[type[CommandBase], ...] = (CreateSilence, ExpireSilence, RecordSilencedAlert)
"""Commands of a silence's stream; every other command is an incident's."""

ALL_COMMANDS: tuple[type[CommandBase], ...] = (
    OpenIncident,
    AcknowledgeIncident,
    ChangeStatus,
    ChangeSeverity,
    AddNote,
    AttachAlert,
    ResolveAlert,
    StartCorrelation,
    StartCorrelationSource,
    CompleteCorrelationSource,
    RecordFinding,
    CompleteCorrelation,
    AssessImpact,
    ConfirmRootCause,
    RecordNotification,
    Escalate,
    *SILENCE_COMMANDS,
)
Command = Annotated[Union[ALL_COMMANDS], Field(discriminator="type")]  # type: ignore[valid-type]
COMMAND_ADAPTER: TypeAdapter[Command] = TypeAdapter(Command)
COMMAND_TYPES: dict[str, type[CommandBase]] = {
    cls.model_fields["type"].default: cls for cls in ALL_COMMANDS
}
