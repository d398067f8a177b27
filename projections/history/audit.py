"""Auditing an incident's log: is every event there, in order, and exactly as sealed?

The verdict is `foundation.chain.verify`'s (versions 1..n without gaps or forks, each
`prev_hash` linking to the event before, each `hash` matching the event's contents).
This module feeds it records as stored (a record that is not even an event breaks the
chain where it stands) and says in words why the first bad version is bad.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from contracts.events import ZERO_HASH, EventEnvelope
from foundation.chain import digest, verify


@dataclass(frozen=True)
class Audit:
    """`valid`; `events` distinct versions checked; where and why the chain breaks."""

    valid: bool
    events: int
    first_bad_version: int | None = None
    problem: str | None = None
    last_hash: str | None = None

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"valid": self.valid, "events": self.events}
        if self.valid:
            body["last_hash"] = self.last_hash
        else:
            body["first_bad_version"] = self.first_bad_version
            body["problem"] = self.problem
        return body


def audit(events: Sequence[EventEnvelope]) -> Audit:
    """The audit of an incident's events in log order."""
    result = verify(events)
    if result.valid:
        return Audit(True, result.events, last_hash=events[-1].hash if events else None)
    bad = result.first_bad_version
    assert bad is not None
    return Audit(False, result.events, bad, explain(events, bad))


def audit_records(values: Iterable[bytes]) -> Audit:
    """The audit of an incident's records as stored: a record that is not a valid event
    fails the audit at the version it should have carried."""
    events: list[EventEnvelope] = []
    for value in values:
        try:
            events.append(EventEnvelope.model_validate_json(value))
        except ValidationError as err:
            so_far = audit(events)
            if not so_far.valid:
                return so_far
            first = err.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "(root)"
            return Audit(False, so_far.events, so_far.events + 1,
                         f"the record after version {so_far.events} is not a valid event ({where}: {first['msg']})")
    return audit(events)


def explain(events: Sequence[EventEnvelope], bad: int) -> str:
    """Why version `bad` breaks the chain, walking the events as `verify` does."""
    seen: dict[int, str] = {}
    prev_hash = ZERO_HASH
    incident = events[0].incident_id if events else None
    for event in events:
        expected = len(seen) + 1
        if event.version < expected and seen.get(event.version) == event.hash and digest(event) == event.hash:
            continue  # an exact repeat, as at-least-once delivery may write
        if expected == bad:
            return _reason(event, expected, prev_hash, incident, seen)
        seen[event.version] = event.hash
        prev_hash = event.hash
    return f"version {bad} is missing"


def _reason(event: EventEnvelope, expected: int, prev_hash: str, incident: Any, seen: dict[int, str]) -> str:
    if event.incident_id != incident:
        return f"the event at version {expected} belongs to incident {event.incident_id}"
    if event.version in seen:
        return f"version {event.version} appears twice with different contents (a fork)"
    if event.version != expected:
        return f"version {expected} is missing: the next event is version {event.version}"
    if event.hash != digest(event):
        return f"version {expected} does not match its hash: it was altered after it was sealed"
    if event.prev_hash != prev_hash:
        return f"version {expected} does not link to version {expected - 1} (prev_hash differs)"
    return f"version {expected} breaks the chain"
