"""Events: facts appended to `<prefix>.events`, one stream per incident.

The envelope (SPEC §2) is the same for every event; `data` holds the fact itself,
whose model is chosen by `type`. `decide` returns the facts (`EventData`); the
decider shell wraps them in envelopes, numbering versions and chaining hashes.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal
from uuid import UUID

from pydantic import Field, SerializeAsAny, SerializerFunctionWrapHandler, model_serializer, model_validator

from contracts.common import Actor, Message, Severity, Status, UtcDatetime
from contracts.hypotheses import Hypothesis
from contracts.silences import Matcher

ZERO_HASH = "0" * 64
SCHEMA_VERSION = 5
"""The envelope contract events are written with. 1: the event types of SPEC §2;
2: adds `RootCauseConfirmed`; 3: findings name their `service` and `signal`, and
`CorrelationCompleted.hypotheses` are `Hypothesis` models; 4: adds the delivery ledger
(`NotificationSent`, `NotificationFailed`, `Escalated`); 5: adds silence streams
(`SilenceCreated`, `AlertSilenced`, `SilenceExpired`: see `SILENCE_EVENTS`). Events keep the version they
were written with; every version stays readable and re-serializes to exactly what was
hashed (findings without service/signal, hypotheses as free dicts)."""

SourceOutcome = Literal["succeeded", "failed", "no_data", "unavailable", "timed_out"]
RunOutcome = Literal["succeeded", "partial", "failed"]


class EventData(Message):
    """The fact an event records. `event_type` names it on the wire."""

    event_type: ClassVar[str]


class IncidentOpened(EventData):
    event_type: ClassVar[str] = "IncidentOpened"
    title: str
    service: str
    severity: Severity
    description: str | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    idempotency_key: str | None = None


class IncidentAcknowledged(EventData):
    event_type: ClassVar[str] = "IncidentAcknowledged"
    by: str


class StatusChanged(EventData):
    event_type: ClassVar[str] = "StatusChanged"
    from_: Status = Field(alias="from")
    to: Status
    reason: str | None = None

    model_config = {"populate_by_name": True, "frozen": True, "extra": "forbid"}


class SeverityChanged(EventData):
    event_type: ClassVar[str] = "SeverityChanged"
    from_: Severity = Field(alias="from")
    to: Severity
    reason: str | None = None

    model_config = {"populate_by_name": True, "frozen": True, "extra": "forbid"}


class NoteAdded(EventData):
    event_type: ClassVar[str] = "NoteAdded"
    note_id: UUID
    text: str
    author: str


class AlertAttached(EventData):
    event_type: ClassVar[str] = "AlertAttached"
    fingerprint: str
    alertname: str | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)
    starts_at: UtcDatetime
    source: str | None = None


class AlertResolved(EventData):
    event_type: ClassVar[str] = "AlertResolved"
    fingerprint: str
    ends_at: UtcDatetime
    firing_left: int = Field(ge=0)


class CorrelationStarted(EventData):
    event_type: ClassVar[str] = "CorrelationStarted"
    run_id: UUID
    sources: list[str]
    trigger: str = "manual"


class CorrelationSourceStarted(EventData):
    event_type: ClassVar[str] = "CorrelationSourceStarted"
    run_id: UUID
    source: str


class CorrelationSourceCompleted(EventData):
    event_type: ClassVar[str] = "CorrelationSourceCompleted"
    run_id: UUID
    source: str
    outcome: SourceOutcome
    attempts: int = Field(ge=0)
    duration_ms: int = Field(ge=0)
    error: str | None = None
    queries: list[str] = Field(default_factory=list)


class FindingRecorded(EventData):
    """What a source noticed about one `signal` of one `service`.

    `service` and `signal` are absent only from version-1 events, written before findings
    named them; they are left out of the serialized form when absent, so such an event
    hashes as it did when it was written."""

    event_type: ClassVar[str] = "FindingRecorded"
    run_id: UUID
    finding_id: UUID
    source: str
    kind: str
    summary: str
    confidence: float = Field(ge=0, le=1)
    changed_at: UtcDatetime | None = None
    evidence: dict[str, Any] = Field(default_factory=dict)
    after_resolution: bool = False
    service: str | None = None
    signal: str | None = None

    @model_serializer(mode="wrap")
    def _without_absent_names(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        data = handler(self)
        for name in ("service", "signal"):
            if data.get(name) is None:
                data.pop(name, None)
        return data


class CorrelationCompleted(EventData):
    """The end of a run, with its hypotheses best first.

    Version-1 events carry hypotheses as free dicts (`summary`, `category`,
    `finding_ids`...); they are kept as written, so they still read and still hash."""

    event_type: ClassVar[str] = "CorrelationCompleted"
    run_id: UUID
    outcome: RunOutcome
    hypotheses: list[Hypothesis] | list[dict[str, Any]] = Field(default_factory=list, union_mode="left_to_right")


class ImpactAssessed(EventData):
    event_type: ClassVar[str] = "ImpactAssessed"
    slo: str
    burn_rate: float
    error_budget_left: float
    estimated_cost: float | None = None
    window: str | None = None


class RootCauseConfirmed(EventData):
    """A person confirmed what caused the incident; a later one supersedes it (`supersedes`
    names the service it replaced)."""

    event_type: ClassVar[str] = "RootCauseConfirmed"
    service: str
    signal: str | None = None
    note: str | None = None
    by: str
    supersedes: str | None = None


ReceiverKind = Literal["webhook", "slack", "teams", "email"]
NotificationTrigger = Literal["opened", "reopened", "severity_raised", "alert", "escalation"]


class DeliveryAttempt(EventData):
    """What every delivery attempt records: which page, to whom, which try, and why it was owed."""

    notification_id: UUID
    receiver: str
    kind: ReceiverKind
    attempt: int = Field(ge=1)
    status: int | None = None
    level: int = Field(ge=0)
    trigger: NotificationTrigger
    trigger_event_id: UUID


class NotificationSent(DeliveryAttempt):
    """A receiver accepted page `notification_id` on this `attempt`."""

    event_type: ClassVar[str] = "NotificationSent"


class NotificationFailed(DeliveryAttempt):
    """An attempt failed; `will_retry` says whether the notifier tries again."""

    event_type: ClassVar[str] = "NotificationFailed"
    error: str
    will_retry: bool


class Escalated(EventData):
    """Nobody acknowledged in time: escalation `level` pages `receivers`."""

    event_type: ClassVar[str] = "Escalated"
    level: int = Field(ge=1)
    receivers: list[str]
    trigger_event_id: UUID


class SilenceCreated(EventData):
    """A silence: alerts matching every matcher open no incident and page no one between
    `starts_at` and `ends_at`."""

    event_type: ClassVar[str] = "SilenceCreated"
    matchers: list[Matcher]
    starts_at: UtcDatetime
    ends_at: UtcDatetime
    comment: str
    by: str


class AlertSilenced(EventData):
    """The intake swallowed this firing alert (once per fingerprint and start). `window`
    names the maintenance window that did, when it was one rather than a created silence."""

    event_type: ClassVar[str] = "AlertSilenced"
    fingerprint: str
    alertname: str | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    starts_at: UtcDatetime
    window: str | None = None


class SilenceExpired(EventData):
    """Someone ended the silence before its `ends_at`."""

    event_type: ClassVar[str] = "SilenceExpired"
    by: str
    reason: str | None = None


SILENCE_EVENTS: tuple[type[EventData], ...] = (SilenceCreated, AlertSilenced, SilenceExpired)
"""The events of a silence's stream. Every event of the log belongs to one stream, named by
the envelope's `incident_id`: an incident's, or, for these types, a silence's (schema 5).
The type says which kind of stream it is, so the envelope keeps one shape for both."""

SILENCE_EVENT_TYPES = frozenset(cls.event_type for cls in SILENCE_EVENTS)

ALL_EVENTS: tuple[type[EventData], ...] = (
    IncidentOpened,
    IncidentAcknowledged,
    StatusChanged,
    SeverityChanged,
    NoteAdded,
    AlertAttached,
    AlertResolved,
    CorrelationStarted,
    CorrelationSourceStarted,
    CorrelationSourceCompleted,
    FindingRecorded,
    CorrelationCompleted,
    ImpactAssessed,
    RootCauseConfirmed,
    NotificationSent,
    NotificationFailed,
    Escalated,
    *SILENCE_EVENTS,
)
EVENT_TYPES: dict[str, type[EventData]] = {cls.event_type: cls for cls in ALL_EVENTS}
EventType = Literal[tuple(EVENT_TYPES)]  # type: ignore[valid-type]


class EventEnvelope(Message):
    """One event on the log, exactly as SPEC §2 lays it out."""

    event_id: UUID
    type: EventType
    schema_version: int = SCHEMA_VERSION
    incident_id: UUID = Field(description="The id of the event's stream: the incident's, or for "
                             "SilenceCreated, AlertSilenced and SilenceExpired the silence's.")
    version: int = Field(ge=1)
    occurred_at: UtcDatetime
    recorded_at: UtcDatetime
    causation_id: UUID
    correlation_id: UUID
    actor: Actor
    prev_hash: str = Field(pattern=r"^[0-9a-f]{64}$")
    hash: str = Field(pattern=r"^[0-9a-f]{64}$")
    data: SerializeAsAny[EventData]

    @model_validator(mode="before")
    @classmethod
    def _typed_data(cls, value: Any) -> Any:
        # `data` is parsed by the model its `type` names, so a consumer gets a typed fact.
        if isinstance(value, dict):
            kind, data = value.get("type"), value.get("data")
            model = EVENT_TYPES.get(kind) if isinstance(kind, str) else None
            if model is not None and isinstance(data, dict):
                value = {**value, "data": model.model_validate(data)}
        return value
