"""What a replay is verified against: the decider's state and the log's copies beside the
rows the rebuild folded, reduced to digests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import UUID, uuid5

from contracts.common import Actor, Severity, Status
from contracts.events import (
    ZERO_HASH, AlertAttached, AlertResolved, EventData, EventEnvelope, IncidentAcknowledged, IncidentOpened,
    NoteAdded, SeverityChanged, StatusChanged,
)
from aiokafka.structs import ConsumerRecord

from projections.replay.expected import Digest, Expected, flat_map, micros, millionths, services_digest
from projections.replay.rebuild import Rebuild
from projections.synthetic import synthetic_log
from foundation.chain import seal

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
ALICE = Actor(kind="user", id="alice")


def life(incident: UUID, *facts: EventData) -> list[EventEnvelope]:
    events, prev = [], ZERO_HASH
    for version, fact in enumerate(facts, start=1):
        event = seal(event_id=uuid5(incident, str(version)), incident_id=incident, version=version, data=fact,
                     occurred_at=T0 + timedelta(minutes=version), recorded_at=T0 + timedelta(minutes=version),
                     causation_id=uuid5(incident, f"c{version}"), correlation_id=incident, actor=ALICE,
                     prev_hash=prev)
        events.append(event)
        prev = event.hash
    return events


class Folded:
    """The expected fold and the rebuild's rows of the same events."""

    def __init__(self) -> None:
        self.expected, self.rebuild = Expected("t.events"), Rebuild("s", "t.events")

    def add(self, partition: int, offset: int, event: EventEnvelope) -> None:
        self.expected.add(partition, offset, event)
        self.rebuild.add(ConsumerRecord("t.events", partition, offset, 0, 0, None, b"", None, 0, 0, []), event)

    def digests(self) -> dict[str, Digest]:
        return self.expected.digests(self.rebuild)


def fold(events, partition: int = 0) -> Folded:
    folded = Folded()
    for offset, event in enumerate(events):
        folded.add(partition, offset, event)
    return folded


def test_digests_of_disjoint_partitions_add_up_to_the_digest_of_the_whole() -> None:
    log = list(synthetic_log(600, seed=4, concurrent=12))
    whole = fold(log).digests()
    halves = [Folded(), Folded()]
    offsets = [0, 0]
    for event in log:
        p = event.incident_id.int % 2
        halves[p].add(p, offsets[p], event)
        offsets[p] += 1
    summed: dict[str, Digest] = {}
    for half in halves:
        for table, digest in half.digests().items():
            summed.setdefault(table, Digest()).__iadd__(digest)
    # Same rows except the timeline's positions, which differ between the two layouts.
    for table in whole:
        assert summed[table].rows == whole[table].rows, table
        if table != "timeline":
            assert summed[table].total == whole[table].total, table


def test_a_repeated_version_is_folded_once() -> None:
    incident = UUID(int=1)
    events = life(incident, IncidentOpened(title="t", service="s", severity=Severity.HIGH),
                  NoteAdded(note_id=UUID(int=9), text="n", author="alice"))
    once, twice = fold(events).digests(), fold(events + events).digests()
    assert {t: (d.rows, d.total) for t, d in once.items() if t != "timeline"} == \
           {t: (d.rows, d.total) for t, d in twice.items() if t != "timeline"}
    assert twice["timeline"].rows == once["timeline"].rows == 2


def test_status_severity_acknowledgement_and_alerts_come_from_the_decider() -> None:
    incident = UUID(int=2)
    expected = fold(life(
        incident,
        IncidentOpened(title="t", service="checkout", severity=Severity.HIGH),
        IncidentAcknowledged(by="bob"),
        AlertAttached(fingerprint="a", starts_at=T0),
        AlertAttached(fingerprint="b", starts_at=T0),
        AlertResolved(fingerprint="a", ends_at=T0 + timedelta(minutes=5), firing_left=1),
        SeverityChanged(from_=Severity.HIGH, to=Severity.CRITICAL),
        StatusChanged(from_=Status.OPEN, to=Status.RESOLVED, reason="fixed"),
        StatusChanged(from_=Status.RESOLVED, to=Status.INVESTIGATING, reason="back"),
    ))
    state = expected.expected.incidents[incident]
    assert state.status is Status.INVESTIGATING and state.severity is Severity.CRITICAL
    assert state.acknowledged and state.firing == frozenset({"b"})
    assert expected.expected.service_tallies()["checkout"].open == ["critical"]
    # What the decider decides is digested from its state, not from the folded row: a
    # projection rule that drifted from the decider makes the stored row differ.
    before = expected.digests()["incidents"]
    expected.rebuild.incidents[incident] = dict(expected.rebuild.incidents[incident], status="open",
                                                severity="low", alerts_firing=7)
    assert expected.digests()["incidents"] == before
    # Every other column is the folded row's, so what reaches PostgreSQL is checked.
    expected.rebuild.incidents[incident] = dict(expected.rebuild.incidents[incident], acknowledged_by="eve")
    assert expected.digests()["incidents"] != before


def test_an_incident_row_the_rebuild_lost_matches_no_stored_row() -> None:
    incident = UUID(int=5)
    folded = fold(life(incident, IncidentOpened(title="t", service="s", severity=Severity.HIGH)))
    kept = folded.digests()["incidents"]
    del folded.rebuild.incidents[incident]
    lost = folded.digests()["incidents"]
    assert lost.rows == kept.rows == 1 and lost.total != kept.total


def test_events_of_an_incident_never_opened_leave_no_incident_row() -> None:
    incident = UUID(int=3)
    expected = fold(life(incident, NoteAdded(note_id=UUID(int=4), text="x", author="a"))[:1])
    assert expected.expected.incidents == {} and expected.expected.notes.rows == 1


def test_services_are_outage_degraded_or_operational_by_their_unresolved_incidents() -> None:
    from projections.replay.expected import ServiceTally, row_hash

    at = T0
    tallies = {"a": ServiceTally(at, ["high", "critical"]), "b": ServiceTally(at, ["low"]), "c": ServiceTally(at)}
    digest = services_digest(tallies)
    rows = [("a", "outage", "2", "critical", micros(at)), ("b", "degraded", "1", "low", micros(at)),
            ("c", "operational", "0", "\x1e", micros(at))]
    assert (digest.rows, digest.total) == (3, sum(row_hash(r) for r in rows))


def test_canonical_values_match_postgresql_text() -> None:
    assert flat_map({"bb": "1", "a": "2", "é": "x"}) == '{"a": "2", "bb": "1", "é": "x"}'
    assert flat_map({"k": 'quote " and \\ and \n'}) == '{"k": "quote \\" and \\\\ and \\n"}'
    assert micros(datetime(1970, 1, 1, 0, 0, 1, 5, tzinfo=UTC)) == "1000005"
    assert millionths(0.82) == "820000" and millionths(None) == "\x1e"
