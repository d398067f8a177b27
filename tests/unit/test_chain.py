"""The hash chain of an incident's events: canonical form, sealing, and tamper detection."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from uuid import UUID, uuid5

from contracts.common import Actor, Status
from contracts.events import (
    ZERO_HASH,
    AlertAttached,
    EventData,
    EventEnvelope,
    IncidentOpened,
    NoteAdded,
    StatusChanged,
)
from foundation.chain import canonical, digest, seal, verify

INCIDENT = UUID("00000000-0000-4000-8000-000000000001")
T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
ALICE = Actor(kind="user", id="alice")


def chain(*facts: EventData, incident: UUID = INCIDENT) -> list[EventEnvelope]:
    events, prev = [], ZERO_HASH
    for version, fact in enumerate(facts, start=1):
        event = seal(
            event_id=uuid5(incident, str(version)), incident_id=incident, version=version,
            data=fact, occurred_at=T0, recorded_at=T0 + timedelta(milliseconds=version),
            causation_id=uuid5(incident, f"c{version}"), correlation_id=incident,
            actor=ALICE, prev_hash=prev,
        )
        events.append(event)
        prev = event.hash
    return events


def a_log() -> list[EventEnvelope]:
    return chain(
        IncidentOpened(title="checkout 5xx", service="checkout", severity="high"),
        StatusChanged(from_=Status.OPEN, to=Status.INVESTIGATING),
        NoteAdded(note_id=uuid5(INCIDENT, "n"), text="rolled back — été", author="alice"),
        StatusChanged(from_=Status.INVESTIGATING, to=Status.RESOLVED, reason="fixed"),
    )


def over_the_wire(events: list[EventEnvelope]) -> list[EventEnvelope]:
    return [EventEnvelope.model_validate_json(e.model_dump_json(by_alias=True)) for e in events]


def tampered(event: EventEnvelope, **changes) -> EventEnvelope:
    raw = json.loads(event.model_dump_json(by_alias=True))
    for path, value in changes.items():
        target = raw
        *parents, leaf = path.split("__")
        for parent in parents:
            target = target[parent]
        target[leaf] = value
    return EventEnvelope.model_validate(raw)


def test_a_sealed_log_verifies_also_after_a_trip_over_the_wire() -> None:
    log = a_log()
    assert verify(log).valid and verify(log).events == 4
    assert verify(over_the_wire(log)) == verify(log)
    assert [e.prev_hash for e in log] == [ZERO_HASH] + [e.hash for e in log[:-1]]


def test_canonical_form_is_sorted_compact_utf8_with_z_timestamps_and_aliases() -> None:
    event = a_log()[1]
    text = canonical(event).decode()
    fields = json.loads(text)
    assert "hash" not in fields and fields["prev_hash"] == a_log()[0].hash
    assert text == json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert fields["data"] == {"from": "open", "to": "investigating", "reason": None}
    assert fields["occurred_at"] == "2024-05-01T12:00:00Z"
    assert "été" in canonical(a_log()[2]).decode("utf-8")


def test_timestamps_in_other_offsets_are_sealed_in_utc() -> None:
    paris = timezone(timedelta(hours=2))
    local = datetime(2024, 5, 1, 14, 0, tzinfo=paris)
    [event] = chain(AlertAttached(fingerprint="a", starts_at=local))
    assert event.data.starts_at.utcoffset() == timedelta(0)
    assert event.data.starts_at == local
    assert '"starts_at":"2024-05-01T12:00:00Z"' in canonical(event).decode()
    assert verify(over_the_wire([event])).valid


def test_changing_any_field_breaks_the_chain_at_that_version() -> None:
    log = a_log()
    for change in ({"data__text": "nothing happened"}, {"actor__id": "mallory"},
                   {"recorded_at": "2024-05-01T13:00:00Z"}, {"schema_version": 99}):
        forged = [*log[:2], tampered(log[2], **change), log[3]]
        assert verify(forged).valid is False
        assert verify(forged).first_bad_version == 3


def test_recomputing_the_hash_of_a_forged_event_breaks_the_next_link() -> None:
    log = a_log()
    forged = tampered(log[1], data__reason="planned")
    forged = forged.model_copy(update={"hash": digest(forged)})
    assert verify([log[0], forged, *log[2:]]).first_bad_version == 3


def test_gaps_reordering_and_foreign_events_are_caught() -> None:
    log = a_log()
    assert verify([log[0], log[1], log[3]]).first_bad_version == 3
    assert verify([log[1], log[0], *log[2:]]).first_bad_version == 1
    assert verify(log[1:]).first_bad_version == 1
    other = chain(IncidentOpened(title="x", service="y", severity="low"),
                  NoteAdded(note_id=INCIDENT, text="x", author="a"),
                  incident=uuid5(INCIDENT, "other"))
    assert verify([log[0], other[1]]).first_bad_version == 2


def test_an_exact_redelivery_is_tolerated_but_a_fork_is_not() -> None:
    log = a_log()
    assert verify([*log[:3], log[1], log[2], log[3]]) == verify(log)
    fork = chain(IncidentOpened(title="checkout 5xx", service="checkout", severity="high"),
                 StatusChanged(from_=Status.OPEN, to=Status.MITIGATED))[1]
    result = verify([*log[:2], fork, *log[2:]])
    assert (result.valid, result.first_bad_version) == (False, 3)


def test_an_empty_log_is_trivially_valid() -> None:
    assert verify([]).valid and verify([]).events == 0
