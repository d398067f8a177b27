"""The incident decider (SPEC §3): pure `decide` and `evolve`, nothing else.

`decide(command, state)` answers with the facts the command causes, `[]` when it would
change nothing, or raises `Rejected`. `evolve(state, event)` folds one fact into the
state. No I/O, no clock, no random ids: everything variable arrives in the command, so
deciding the same command on the same state always gives the same facts. The worker
(`streams.worker`) is the shell that numbers, hashes and appends them.
"""

from __future__ import annotations

import math
from functools import cache
from enum import StrEnum
from typing import Literal

from contracts.commands import (
    AcknowledgeIncident,
    AddNote,
    AssessImpact,
    AttachAlert,
    ChangeSeverity,
    ChangeStatus,
    CommandBase,
    CompleteCorrelation,
    CompleteCorrelationSource,
    ConfirmRootCause,
    Escalate,
    OpenIncident,
    RecordNotification,
    RecordFinding,
    ResolveAlert,
    StartCorrelation,
    StartCorrelationSource,
)
from contracts.common import SYSTEM, Actor, Status
from contracts.events import (
    AlertAttached,
    AlertResolved,
    CorrelationCompleted,
    CorrelationSourceCompleted,
    CorrelationSourceStarted,
    CorrelationStarted,
    Escalated,
    EventData,
    NotificationFailed,
    NotificationSent,
    ZERO_HASH,
    EventEnvelope,
    FindingRecorded,
    ImpactAssessed,
    IncidentAcknowledged,
    IncidentOpened,
    NoteAdded,
    RootCauseConfirmed,
    SeverityChanged,
    StatusChanged,
)
from streams.incident import (
    RECENT_COMMANDS,
    RECENT_ESCALATIONS,
    RECENT_KEYS,
    RECENT_RUNS,
    Cause,
    Incident,
    Run,
    State,
    remember,
)

RejectionCode = Literal["invalid_transition", "version_conflict", "not_found", "validation_error"]


class Rejected(Exception):
    """A command the decider refuses; `code` is the machine code of SPEC §7."""

    def __init__(self, code: RejectionCode, detail: str, field: str | None = None) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail
        self.field = field


class Move(StrEnum):
    ALLOWED = "allowed"
    NEEDS_REASON = "needs a reason"


TRANSITIONS: dict[tuple[Status, Status], Move] = {
    (Status.OPEN, Status.INVESTIGATING): Move.ALLOWED,
    (Status.OPEN, Status.MITIGATED): Move.ALLOWED,
    (Status.OPEN, Status.RESOLVED): Move.NEEDS_REASON,
    (Status.INVESTIGATING, Status.MITIGATED): Move.ALLOWED,
    (Status.INVESTIGATING, Status.RESOLVED): Move.ALLOWED,
    (Status.MITIGATED, Status.INVESTIGATING): Move.ALLOWED,  # regressed
    (Status.MITIGATED, Status.RESOLVED): Move.ALLOWED,
    (Status.RESOLVED, Status.INVESTIGATING): Move.NEEDS_REASON,  # reopened
}
"""SPEC §3 as data: every status move that is allowed. Anything else is `invalid_transition`."""

CORRELATION_STARTED = "correlation started"
ALL_ALERTS_RESOLVED = "all alerts resolved"

initial_state: State = None


def is_terminal(state: State) -> bool:
    """Never: a resolved incident can still be reopened and still receives late findings."""
    return False


def decide(command: CommandBase, state: State) -> list[EventData]:
    """The facts `command` causes on `state`; `[]` if it changes nothing; else `Rejected`.

    A command already applied (same `command_id` or `idempotency_key`) is a no-op, so
    redelivery is harmless. Opening an incident that exists is a no-op too.
    """
    if state is not None and state.has_processed(command.command_id, command.idempotency_key):
        return []
    if isinstance(command, OpenIncident):
        return _open(command, state)
    if state is None:
        raise Rejected("not_found", f"incident {command.incident_id} does not exist")
    if command.expected_version is not None and command.expected_version != state.version:
        raise Rejected(
            "version_conflict",
            f"expected version {command.expected_version}, incident is at {state.version}",
            "expected_version",
        )
    match command:
        case AcknowledgeIncident():
            return _acknowledge(command, state)
        case ChangeStatus():
            return _change_status(command, state)
        case ChangeSeverity():
            if command.severity == state.severity:
                return []
            return [SeverityChanged(from_=state.severity, to=command.severity, reason=command.reason)]
        case AddNote():
            return [NoteAdded(note_id=command.note_id, text=command.text, author=command.actor.id)]
        case AttachAlert():
            return _attach_alert(command, state)
        case ResolveAlert():
            return _resolve_alert(command, state)
        case StartCorrelation():
            return _start_correlation(command, state)
        case StartCorrelationSource():
            run = _run_with_source(state, command.run_id, command.source)
            if command.source in run.started or command.source in run.completed:
                return []
            return [CorrelationSourceStarted(run_id=run.run_id, source=command.source)]
        case CompleteCorrelationSource():
            run = _run_with_source(state, command.run_id, command.source)
            if command.source in run.completed:
                return []
            return [CorrelationSourceCompleted(**_fields(command, CorrelationSourceCompleted))]
        case RecordFinding():
            _run_with_source(state, command.run_id, command.source)
            fields = _fields(command, FindingRecorded)
            return [FindingRecorded(**fields, after_resolution=state.resolved)]
        case CompleteCorrelation():
            run = _known_run(state, command.run_id)
            if run.done:
                return []
            return [CorrelationCompleted(**_fields(command, CorrelationCompleted))]
        case AssessImpact():
            for field in ("burn_rate", "error_budget_left", "estimated_cost"):
                value = getattr(command, field)
                if value is not None and not math.isfinite(value):
                    raise Rejected("validation_error", f"{field} must be a finite number", field)
            return [ImpactAssessed(**_fields(command, ImpactAssessed))]
        case ConfirmRootCause():
            return _confirm_root_cause(command, state)
        case RecordNotification():
            return _record_notification(command)
        case Escalate():
            return _escalate(command, state)
    raise Rejected("validation_error", f"unknown command {type(command).__name__}", "type")


def actor_for(command: CommandBase, fact: EventData) -> Actor:
    """Who an event is attributed to: the command's actor, except a status change the
    decider made on its own (correlation started, last alert resolved), which is the system's."""
    if isinstance(fact, StatusChanged) and not isinstance(command, ChangeStatus):
        return SYSTEM
    return command.actor


def evolve(state: State, event: EventEnvelope | EventData) -> State:
    """The state after `event`. Given an envelope, its version, hash and causing command are
    remembered too; an envelope at or below the current version is already applied."""
    envelope = event if isinstance(event, EventEnvelope) else None
    data = envelope.data if envelope is not None else event
    if envelope is not None and state is not None and envelope.version <= state.version:
        return state
    version = envelope.version if envelope is not None else (state.version if state else 0) + 1
    if isinstance(data, IncidentOpened):
        key = data.idempotency_key
        state = Incident(
            title=data.title,
            service=data.service,
            status=Status.OPEN,
            severity=data.severity,
            version=version,
            last_hash=ZERO_HASH,
            recent_keys=remember((), key, RECENT_KEYS) if key else (),
            opened_at=envelope.occurred_at if envelope is not None else None,
        )
    elif state is None:
        raise ValueError(f"{type(data).__name__} before IncidentOpened")
    updates: dict[str, object] = {"version": version, **_changes(state, data)}
    if envelope is not None:
        updates["last_hash"] = envelope.hash
        updates["recent_commands"] = remember(
            state.recent_commands, str(envelope.causation_id), RECENT_COMMANDS
        )
    return state.model_copy(update=updates)


def _changes(state: Incident, data: EventData) -> dict[str, object]:
    match data:
        case IncidentAcknowledged():
            return {"acknowledged": True, "reopened_unacknowledged": False}
        case StatusChanged():
            if data.from_ is Status.RESOLVED:  # reopened: it needs acknowledging again
                return {"status": data.to, "reopened_unacknowledged": True}
            return {"status": data.to}
        case SeverityChanged():
            return {"severity": data.to}
        case AlertAttached():
            return {"firing": state.firing | {data.fingerprint},
                    "first_alert_at": state.first_alert_at or data.starts_at}
        case AlertResolved():
            return {"firing": state.firing - {data.fingerprint}}
        case CorrelationStarted():
            run = Run(run_id=data.run_id, sources=tuple(data.sources))
            return {"runs": (*state.runs[-(RECENT_RUNS - 1):], run)}
        case CorrelationSourceStarted():
            return _with_run(state, data.run_id, lambda r: {"started": r.started | {data.source}})
        case CorrelationSourceCompleted():
            return _with_run(
                state, data.run_id, lambda r: {"completed": r.completed | {data.source}}
            )
        case CorrelationCompleted():
            return _with_run(state, data.run_id, lambda r: {"done": True})
        case RootCauseConfirmed():
            return {"root_cause": Cause(service=data.service, signal=data.signal, note=data.note)}
        case Escalated():
            step = _escalation_step(data.trigger_event_id, data.level, data.receivers)
            return {"escalations": remember(state.escalations, step, RECENT_ESCALATIONS)}
    return {}  # notes, findings, impact: recorded in the log, nothing to decide on


def _with_run(state: Incident, run_id: object, change) -> dict[str, object]:
    runs = tuple(r.model_copy(update=change(r)) if r.run_id == run_id else r for r in state.runs)
    return {"runs": runs}


def _open(command: OpenIncident, state: State) -> list[EventData]:
    if state is not None:
        return []
    if command.expected_version not in (None, 0):
        raise Rejected(
            "version_conflict",
            f"expected version {command.expected_version}, incident does not exist yet",
            "expected_version",
        )
    return [IncidentOpened(**_fields(command, IncidentOpened))]


def _acknowledge(command: AcknowledgeIncident, state: Incident) -> list[EventData]:
    if state.acknowledged and not state.reopened_unacknowledged:
        return []
    if state.resolved:
        raise Rejected("invalid_transition", "a resolved incident cannot be acknowledged")
    return [IncidentAcknowledged(by=command.actor.id)]


def _change_status(command: ChangeStatus, state: Incident) -> list[EventData]:
    if command.to == state.status:
        return []
    move = TRANSITIONS.get((state.status, command.to))
    if move is None:
        raise Rejected(
            "invalid_transition", f"cannot move from {state.status} to {command.to}", "to"
        )
    if move is Move.NEEDS_REASON and not (command.reason or "").strip():
        raise Rejected(
            "validation_error",
            f"moving from {state.status} to {command.to} needs a reason",
            "reason",
        )
    return [StatusChanged(from_=state.status, to=command.to, reason=command.reason)]


def _attach_alert(command: AttachAlert, state: Incident) -> list[EventData]:
    if command.fingerprint in state.firing:
        return []
    if state.resolved:
        raise Rejected(
            "invalid_transition", "alerts cannot be attached to a resolved incident", "fingerprint"
        )
    return [AlertAttached(**_fields(command, AlertAttached))]


def _resolve_alert(command: ResolveAlert, state: Incident) -> list[EventData]:
    if command.fingerprint not in state.firing:
        return []
    left = len(state.firing) - 1
    facts: list[EventData] = [
        AlertResolved(fingerprint=command.fingerprint, ends_at=command.ends_at, firing_left=left)
    ]
    if left == 0 and command.mitigate_when_last and _may_move(state.status, Status.MITIGATED):
        facts.append(
            StatusChanged(from_=state.status, to=Status.MITIGATED, reason=ALL_ALERTS_RESOLVED)
        )
    return facts


def _start_correlation(command: StartCorrelation, state: Incident) -> list[EventData]:
    if state.run(command.run_id) is not None:
        return []
    if len(set(command.sources)) != len(command.sources):
        raise Rejected("validation_error", "sources must not repeat", "sources")
    facts: list[EventData] = [CorrelationStarted(**_fields(command, CorrelationStarted))]
    if state.status is Status.OPEN:
        facts.append(
            StatusChanged(from_=Status.OPEN, to=Status.INVESTIGATING, reason=CORRELATION_STARTED)
        )
    return facts


def _confirm_root_cause(command: ConfirmRootCause, state: Incident) -> list[EventData]:
    # Any status: a cause is often confirmed after the incident is resolved.
    for field in ("service", "signal", "note"):
        value = getattr(command, field)
        if value is not None and not value.strip():
            raise Rejected("validation_error", f"{field} must not be blank", field)
    cause = Cause(service=command.service, signal=command.signal, note=command.note)
    if cause == state.root_cause:
        return []
    previous = state.root_cause.service if state.root_cause is not None else None
    return [RootCauseConfirmed(service=cause.service, signal=cause.signal, note=cause.note,
                               by=command.actor.id, supersedes=previous)]


def _record_notification(command: RecordNotification) -> list[EventData]:
    # Any status: a page owed before the incident resolved is still recorded when it lands.
    if command.outcome == "sent":
        return [NotificationSent(**_fields(command, NotificationSent))]
    if not (command.error or "").strip():
        raise Rejected("validation_error", "a failed attempt needs its error", "error")
    return [NotificationFailed(**_fields(command, NotificationFailed))]


def _escalate(command: Escalate, state: Incident) -> list[EventData]:
    # Someone acknowledged (or it resolved) while the deadline passed: nothing to escalate.
    if (state.acknowledged and not state.reopened_unacknowledged) or state.resolved:
        return []
    if _escalation_step(command.trigger_event_id, command.level, command.receivers) in state.escalations:
        return []
    return [Escalated(level=command.level, receivers=command.receivers,
                      trigger_event_id=command.trigger_event_id)]


def _escalation_step(trigger_event_id: object, level: int, receivers: list[str]) -> str:
    return f"{trigger_event_id}:{level}:{','.join(receivers)}"


def _may_move(current: Status, to: Status) -> bool:
    return TRANSITIONS.get((current, to)) is Move.ALLOWED


def _known_run(state: Incident, run_id: object) -> Run:
    run = state.run(run_id)  # type: ignore[arg-type]
    if run is None:
        raise Rejected("validation_error", f"correlation run {run_id} is not known", "run_id")
    return run


def _run_with_source(state: Incident, run_id: object, source: str) -> Run:
    run = _known_run(state, run_id)
    if source not in run.sources:
        raise Rejected(
            "validation_error", f"source {source!r} is not part of run {run_id}", "source"
        )
    return run


def _fields(command: CommandBase, fact: type[EventData]) -> dict[str, object]:
    # Commands and their facts share field names; copy exactly the ones the fact has.
    return {name: getattr(command, name) for name in _shared(type(command), fact)}


@cache
def _shared(command: type[CommandBase], fact: type[EventData]) -> tuple[str, ...]:
    return tuple(sorted(fact.model_fields.keys() & command.model_fields.keys()))
