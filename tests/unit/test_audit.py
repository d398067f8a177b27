"""Auditing stored records of an incident: the first bad version, and why."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from uuid import UUID, uuid5

from contracts.common import Actor, Severity, Status
from contracts.events import ZERO_HASH, EventEnvelope, IncidentAcknowledged, IncidentOpened, NoteAdded, StatusChanged
from projections.history.audit import audit, audit_records
from foundation.chain import digest, seal

INCIDENT = UUID(int=42)
T0 = datetime(2025, 5, 1, 8, 0, tzinfo=UTC)


def log() -> list[EventEnvelope]:
    facts = [IncidentOpened(title="db slow", service="db", severity=Severity.MEDIUM), IncidentAcknowledged(by="a"),
             NoteAdded(note_id=UUID(int=1), text="vacuum", author="a"),
             StatusChanged(from_=Status.OPEN, to=Status.MITIGATED), NoteAdded(note_id=UUID(int=2), text="ok", author="a")]
    events, prev = [], ZERO_HASH
    for version, fact in enumerate(facts, start=1):
        event = seal(event_id=uuid5(INCIDENT, str(version)), incident_id=INCIDENT, version=version, data=fact,
                     occurred_at=T0 + timedelta(seconds=version), recorded_at=T0 + timedelta(seconds=version),
                     causation_id=uuid5(INCIDENT, f"c{version}"), correlation_id=INCIDENT,
                     actor=Actor(kind="user", id="a"), prev_hash=prev)
        events.append(event)
        prev = event.hash
    return events


def stored(events: list[EventEnvelope]) -> list[bytes]:
    return [e.model_dump_json(by_alias=True).encode() for e in events]


def edit(value: bytes, **data) -> bytes:
    raw = json.loads(value)
    raw["data"].update(data)
    return json.dumps(raw).encode()


def test_an_intact_log_is_valid_and_names_its_last_hash() -> None:
    events = log()
    result = audit_records(stored(events))
    assert result.to_json() == {"valid": True, "events": 5, "last_hash": events[-1].hash}


def test_altering_one_event_is_detected_at_its_version() -> None:
    values = stored(log())
    values[2] = edit(values[2], text="nothing to see")
    result = audit_records(values)
    assert (result.valid, result.events, result.first_bad_version) == (False, 2, 3)
    assert result.problem == "version 3 does not match its hash: it was altered after it was sealed"


def test_an_altered_event_sealed_again_breaks_the_next_link() -> None:
    events = log()
    forged = events[2].model_copy(update={"data": NoteAdded(note_id=UUID(int=1), text="forged", author="a")})
    events[2] = forged.model_copy(update={"hash": digest(forged)})
    result = audit(events)
    assert result.first_bad_version == 4
    assert result.problem == "version 4 does not link to version 3 (prev_hash differs)"


def test_a_missing_version_a_fork_and_an_unreadable_record() -> None:
    events = log()
    assert audit(events[:2] + events[3:]).problem == "version 3 is missing: the next event is version 4"
    fork = events[1].model_copy(update={"data": IncidentAcknowledged(by="b")})
    fork = fork.model_copy(update={"hash": digest(fork)})
    assert audit(events[:3] + [fork]).problem == "version 2 appears twice with different contents (a fork)"
    values = stored(events)
    values[3] = b"{garbage"
    result = audit_records(values)
    assert (result.valid, result.first_bad_version) == (False, 4)
    assert result.problem.startswith("the record after version 3 is not a valid event")


def test_an_exact_repeat_is_not_tampering() -> None:
    events = log()
    assert audit(events[:3] + events[2:3] + events[3:]).valid
