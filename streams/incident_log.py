"""Turning decided facts into the incident's log, and the log back into state.

`record` wraps what `decide` returned into sealed envelopes: versions continue the
state's, each hash links to the one before, and every id and timestamp is derived from
the command and the `recorded_at` the caller passes in. So the same command decided
again on the same state yields byte-identical events, which is what makes at-least-once
redelivery harmless (readers drop an exact `(incident_id, version)` repeat).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from uuid import uuid5

from contracts.commands import SILENCE_COMMANDS, CommandBase
from contracts.events import SILENCE_EVENT_TYPES, ZERO_HASH, EventData, EventEnvelope
from foundation.chain import seal
from streams import silence
from streams.decider import Rejected, actor_for, decide, evolve as evolve_incident, initial_state
from streams.incident import Incident
from streams.silence import Silence

State = Incident | Silence | None
"""The state of one stream of the log: an incident's, a silence's, or nothing yet."""


@dataclass(frozen=True, slots=True)
class Decision:
    """What a command did: the events to append (possibly none) and the state after them."""

    events: list[EventEnvelope]
    state: State


def record(
    command: CommandBase, state: State, facts: list[EventData], recorded_at: datetime
) -> list[EventEnvelope]:
    """Seal `facts` as the next events of the incident `state` describes.

    event_id = uuid5(command_id, index); occurred_at = command.issued_at; causation_id =
    command_id; correlation_id = the command's, else its command_id.
    """
    version = state.version if state is not None else 0
    prev_hash = state.last_hash if state is not None else ZERO_HASH
    events: list[EventEnvelope] = []
    for index, fact in enumerate(facts):
        event = seal(
            event_id=uuid5(command.command_id, str(index)),
            incident_id=command.incident_id,
            version=version + index + 1,
            data=fact,
            occurred_at=command.issued_at,
            recorded_at=recorded_at,
            causation_id=command.command_id,
            correlation_id=command.correlation_id or command.command_id,
            actor=actor_for(command, fact),
            prev_hash=prev_hash,
        )
        events.append(event)
        prev_hash = event.hash
    return events


def evolve(state: State, event: EventEnvelope) -> State:
    """`state` after `event`, by the decider of the event's stream."""
    if event.type in SILENCE_EVENT_TYPES:
        return silence.evolve(state if isinstance(state, Silence) else None, event)
    if isinstance(state, Silence):
        raise ValueError(f"{event.type} on the stream of a silence")
    return evolve_incident(state, event)


def decide_any(command: CommandBase, state: State) -> list[EventData]:
    """What `command` causes, by the decider of its stream (a silence's or an incident's)."""
    if isinstance(command, SILENCE_COMMANDS):
        if isinstance(state, Incident):
            raise Rejected("not_found", f"silence {command.incident_id} does not exist")
        return silence.decide(command, state)
    if isinstance(state, Silence):
        raise Rejected("not_found", f"incident {command.incident_id} does not exist")
    return decide(command, state)


def execute(command: CommandBase, state: State, recorded_at: datetime) -> Decision:
    """Decide `command` on `state` and seal the result; raises `Rejected` like `decide`."""
    events = record(command, state, decide_any(command, state), recorded_at)
    for event in events:
        state = evolve(state, event)
    return Decision(events, state)


def fold(events: Iterable[EventEnvelope], state: State = initial_state) -> State:
    """The state after applying `events` in order; exact repeats of a version are skipped."""
    for event in events:
        state = evolve(state, event)
    return state


def state_as_of(events: Iterable[EventEnvelope], as_of: datetime) -> State:
    """The incident as it stood at `as_of`: the log folded up to the last event recorded
    at or before that instant (`None` if it was not yet opened)."""
    state = initial_state
    for event in events:
        if event.recorded_at > as_of:
            break
        state = evolve(state, event)
    return state
