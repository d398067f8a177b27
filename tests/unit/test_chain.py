"""The hash chain of an incident's events: canonical form, sealing, and tamper detection."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from uuid import UUID, uuid5

import pytest
from pydantic import ValidationError

from contracts.common import Actor, Status
from contracts.events import (
    SCHEMA_VERSION,
    ZERO_HASH,
    AlertAttached,
    EventData,
    EventEnvelope,
    ImpactAssessed,
    IncidentOpened,
    NoteAdded,
    StatusChanged,
)
from foundation.chain import _envelope, canonical, digest, seal, verify
from tests.unit.test_golden_events import WRITTEN

EVENT_FILES = Path(__file__).parents[1] / "data" / "events"

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


def sealed_as_before(**fields) -> EventEnvelope:
    """What `seal` did before it assembled the envelope itself: the reference it must equal."""
    data = fields.pop("data")
    updates = {name: value.astimezone(UTC) for name, value in data
               if isinstance(value, datetime) and value.utcoffset()}
    data = data.model_copy(update=updates) if updates else data
    draft = EventEnvelope.model_construct(
        type=data.event_type, schema_version=SCHEMA_VERSION, hash=ZERO_HASH, data=data,
        **{**fields, "occurred_at": fields["occurred_at"].astimezone(UTC),
           "recorded_at": fields["recorded_at"].astimezone(UTC)})
    return draft.model_copy(update={"hash": digest(draft)})


def stored_events() -> list[EventEnvelope]:
    stored = [EventEnvelope.model_validate_json(raw) for raw in WRITTEN]
    for path in sorted(EVENT_FILES.glob("*.json")):
        stored += [EventEnvelope.model_validate(item) for item in json.loads(path.read_text())]
    return stored


def test_stored_events_keep_their_hashes_and_reseal_as_before() -> None:
    events = stored_events()
    assert len(events) > len(WRITTEN)
    for event in events:
        # As written (older schema versions): the envelope `seal` assembles hashes the same.
        fields = {name: getattr(event, name) for name in EventEnvelope.model_fields}
        assert digest(_envelope(fields)) == event.hash
        # Sealed again now: the same envelope, bytes and hash as the reference way.
        again = dict(fields)
        for name in ("type", "schema_version", "hash"):
            del again[name]
        fast, reference = seal(**again), sealed_as_before(**again)
        assert fast.hash == reference.hash
        assert fast.model_dump_json(by_alias=True) == reference.model_dump_json(by_alias=True)


PARIS = timezone(timedelta(hours=2))
EDGE_FLOATS = [1e-05, 1e16, 5e-324, 1.7976931348623157e308, -0.0, 0.1 + 0.2, 2.0**53, 123456789.12345679]


@pytest.mark.parametrize("fact", [
    IncidentOpened(title="checkout 5xx — été 😀", service="checkout", severity="high",
                   labels={"hash": ZERO_HASH, "team": "payments"}, idempotency_key="k"),
    AlertAttached(fingerprint="a", starts_at=datetime(2024, 5, 1, 14, 0, tzinfo=PARIS)),
    NoteAdded(note_id=uuid5(INCIDENT, "n"), text='"quoted" \\ \n\u2028', author="alice"),
    *(ImpactAssessed(slo="availability", burn_rate=f, error_budget_left=-f, estimated_cost=f / 3)
      for f in EDGE_FLOATS),
])
def test_seal_gives_the_envelope_and_hash_it_gave_before(fact: EventData) -> None:
    fields = dict(event_id=uuid5(INCIDENT, "e"), incident_id=INCIDENT, version=7, data=fact,
                  occurred_at=datetime(2024, 5, 1, 14, 0, 0, 123456, tzinfo=PARIS),
                  recorded_at=T0, causation_id=uuid5(INCIDENT, "c"), correlation_id=INCIDENT,
                  actor=ALICE, prev_hash="ab" * 32)
    fast, reference = seal(**fields), sealed_as_before(**fields)
    assert fast.hash == reference.hash == digest(fast)
    assert fast == reference
    assert fast.model_fields_set == reference.model_fields_set
    assert (fast.__pydantic_extra__, fast.__pydantic_private__) == (None, None)
    assert fast.model_dump_json(by_alias=True) == reference.model_dump_json(by_alias=True)
    assert EventEnvelope.model_validate_json(fast.model_dump_json(by_alias=True)) == fast


def test_a_fact_with_an_infinity_is_refused_as_before() -> None:
    fact = ImpactAssessed(slo="availability", burn_rate=float("inf"), error_budget_left=0.5)
    fields = dict(event_id=INCIDENT, incident_id=INCIDENT, version=1, data=fact, occurred_at=T0,
                  recorded_at=T0, causation_id=INCIDENT, correlation_id=INCIDENT, actor=ALICE,
                  prev_hash=ZERO_HASH)
    for sealing in (seal, sealed_as_before):
        with pytest.raises(ValueError, match="not JSON compliant"):
            sealing(**fields)


def test_a_sealed_envelope_stays_frozen() -> None:
    event = a_log()[0]
    with pytest.raises(ValidationError):
        event.hash = ZERO_HASH  # type: ignore[misc]
