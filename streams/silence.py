"""The silence decider (SPEC §15): pure `decide` and `evolve` for a silence's stream.

A silence is its own stream in the log, keyed like an incident by its id: created with
its matchers and window, then one `AlertSilenced` per alert it swallowed, and
`SilenceExpired` if someone ends it early. A recurring maintenance window from settings
has a stream too (id derived from its name, `foundation.maintenance.window_stream`), holding only the
`AlertSilenced` of what it swallowed. Like the incident decider: no clock, no random ids;
the command's `issued_at` is the only "now".
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal
from uuid import UUID

from contracts.commands import CommandBase, CreateSilence, ExpireSilence, RecordSilencedAlert
from contracts.events import AlertSilenced, EventData, EventEnvelope, SilenceCreated, SilenceExpired, ZERO_HASH
from contracts.silences import Matcher
from streams.decider import Rejected
from streams.incident import RECENT_COMMANDS, Frozen, remember

RECENT_SWALLOWED = 256
"""How many swallowed alerts (fingerprint and start) a silence remembers, so an alert its
producer re-sends every few minutes is recorded once."""


class Silence(Frozen):
    """A silence's stream as far as deciding the next command needs to know."""

    stream: Literal["silence"] = "silence"
    version: int
    last_hash: str
    matchers: tuple[Matcher, ...] = ()
    starts_at: datetime | None = None
    ends_at: datetime | None = None
    window: str | None = None  # a maintenance window's stream: no matchers, no expiry
    expired: bool = False
    recent_commands: tuple[str, ...] = ()
    swallowed: tuple[str, ...] = ()  # "<fingerprint>@<starts_at>", newest last


def swallowed_key(fingerprint: str, starts_at: datetime) -> str:
    return f"{fingerprint}@{starts_at.isoformat()}"


def decide(command: CommandBase, state: Silence | None) -> list[EventData]:
    """The facts a silence command causes on `state`; `[]` if it changes nothing; else `Rejected`."""
    if state is not None and str(command.command_id) in state.recent_commands:
        return []
    match command:
        case CreateSilence():
            if state is not None:
                return []  # created already: the same silence asked for twice
            if command.ends_at <= command.starts_at:
                raise Rejected("validation_error", "ends_at must be after starts_at", "ends_at")
            return [SilenceCreated(matchers=command.matchers, starts_at=command.starts_at,
                                   ends_at=command.ends_at, comment=command.comment, by=command.actor.id)]
        case ExpireSilence():
            if state is None:
                raise Rejected("not_found", f"silence {command.incident_id} does not exist")
            if state.window is not None:
                raise Rejected("validation_error", f"maintenance window {state.window!r} comes from "
                               "settings; change it there", "id")
            if state.expired or (state.ends_at is not None and command.issued_at >= state.ends_at):
                return []
            return [SilenceExpired(by=command.actor.id, reason=command.reason)]
        case RecordSilencedAlert():
            if state is None and command.window is None:
                raise Rejected("not_found", f"silence {command.incident_id} does not exist")
            if state is not None and swallowed_key(command.fingerprint, command.starts_at) in state.swallowed:
                return []
            return [AlertSilenced(fingerprint=command.fingerprint, alertname=command.alertname,
                                  labels=command.labels, starts_at=command.starts_at, window=command.window)]
    raise Rejected("validation_error", f"unknown command {type(command).__name__}", "type")


def evolve(state: Silence | None, event: EventEnvelope | EventData) -> Silence:
    """The silence after `event`; an envelope at or below the current version is already applied."""
    envelope = event if isinstance(event, EventEnvelope) else None
    data = envelope.data if envelope is not None else event
    if envelope is not None and state is not None and envelope.version <= state.version:
        return state
    version = envelope.version if envelope is not None else (state.version if state else 0) + 1
    match data:
        case SilenceCreated():
            state = Silence(version=version, last_hash=ZERO_HASH, matchers=tuple(data.matchers),
                            starts_at=data.starts_at, ends_at=data.ends_at)
        case AlertSilenced():
            if state is None:  # the first alert a maintenance window swallowed
                state = Silence(version=version, last_hash=ZERO_HASH, window=data.window)
            key = swallowed_key(data.fingerprint, data.starts_at)
            state = state.model_copy(update={"swallowed": remember(state.swallowed, key, RECENT_SWALLOWED)})
        case SilenceExpired():
            if state is None:
                raise ValueError("SilenceExpired before SilenceCreated")
            state = state.model_copy(update={"expired": True})
        case _:
            raise ValueError(f"{type(data).__name__} is not an event of a silence")
    updates: dict[str, object] = {"version": version}
    if envelope is not None:
        updates["last_hash"] = envelope.hash
        updates["recent_commands"] = remember(state.recent_commands, str(envelope.causation_id),
                                              RECENT_COMMANDS)
    return state.model_copy(update=updates)


class SilenceRule(Frozen):
    """What the intake needs of a created silence, as the decider publishes it on the
    `<prefix>.silences` topic (keyed by id, compacted: the latest rule of each silence)."""

    id: UUID
    matchers: tuple[Matcher, ...]
    starts_at: datetime
    ends_at: datetime
    expired: bool = False

    def silences(self, labels: dict[str, str], at: datetime) -> bool:
        """Whether this rule swallows an alert with `labels` received at `at`."""
        return (not self.expired and self.starts_at <= at < self.ends_at
                and all(matcher.matches(labels) for matcher in self.matchers))


RULE_EVENTS = frozenset({SilenceCreated.event_type, SilenceExpired.event_type})
"""The events that change a silence's rule."""


def rule_of(silence_id: UUID, state: Silence | None) -> SilenceRule | None:
    """The rule a silence's state stands for; None for a maintenance window's stream."""
    if state is None or state.window is not None or state.starts_at is None or state.ends_at is None:
        return None
    return SilenceRule(id=silence_id, matchers=state.matchers, starts_at=state.starts_at,
                       ends_at=state.ends_at, expired=state.expired)
