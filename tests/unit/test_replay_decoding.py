"""The replay's fast decoder accepts exactly what the projector accepts, and reads it the same."""

from __future__ import annotations

import json

import pytest

from contracts.events import EventEnvelope
from projections.replay.decoding import DecodedEvent, Decoder
from foundation.dead_letters import Poison
from projections.rejects import decode
from projections.synthetic import synthetic_log

LOG = list(synthetic_log(400, seed=11, concurrent=8))
FIELDS = ("type", "incident_id", "version", "occurred_at", "recorded_at", "actor", "data", "hash", "prev_hash")


def wire(event: EventEnvelope) -> bytes:
    return event.model_dump_json(by_alias=True).encode()


def outcome(decoder: Decoder, value: bytes | None):
    try:
        return decoder.decode(value)
    except Poison:
        return None


def full(value: bytes | None):
    try:
        return decode(value)
    except Poison:
        return None


def same_event(fast, slow: EventEnvelope) -> None:
    for name in FIELDS:
        assert getattr(fast, name) == getattr(slow, name), name
    assert str(fast.event_id) == str(slow.event_id)


def test_every_kind_of_event_takes_the_fast_path_and_reads_as_the_full_decoder_reads_it() -> None:
    decoder = Decoder()
    kinds = set()
    for event in LOG:
        fast = decoder.decode(wire(event))
        assert isinstance(fast, DecodedEvent)
        same_event(fast, event)
        kinds.add(event.type)
    assert decoder.slow == 0
    assert len(kinds) == 13  # every event type of the contract


def altered(event: EventEnvelope, change) -> bytes:
    raw = json.loads(wire(event))
    change(raw)
    return json.dumps(raw).encode()


def _set(path: str, value):
    def change(raw: dict) -> None:
        *parents, leaf = path.split(".")
        for parent in parents:
            raw = raw[parent]
        raw[leaf] = value
    return change


def _drop(name: str):
    return lambda raw: raw.pop(name)


CASES = {
    # refused by both
    "not json": None,
    "missing field": _drop("hash"),
    "extra field": _set("extra", 1),
    "unknown type": _set("type", "IncidentExploded"),
    "version zero": _set("version", 0),
    "naive timestamp": _set("occurred_at", "2025-01-06T09:00:00"),
    "short hash": _set("hash", "ab"),
    "uppercase hash": lambda raw: raw.update(hash=raw["hash"].upper()),
    "bad actor kind": _set("actor.kind", "robot"),
    "empty actor id": _set("actor.id", ""),
    "bad uuid": _set("event_id", "not-a-uuid"),
    "bad data": _set("data.title", None),
    # accepted by the full decoder, in forms the fast path leaves to it
    "uppercase uuid": lambda raw: raw.update(incident_id=raw["incident_id"].upper()),
    "uuid without hyphens": lambda raw: raw.update(causation_id=raw["causation_id"].replace("-", "")),
    "version as text": lambda raw: raw.update(version=str(raw["version"])),
    "timestamp with offset": _set("recorded_at", "2025-01-06T10:00:00.5+01:00"),
    "nanoseconds": _set("occurred_at", "2025-01-06T09:00:00.123456789Z"),
    "default schema version": _drop("schema_version"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_odd_records_are_judged_exactly_as_the_projector_judges_them(case: str) -> None:
    change = CASES[case]
    value = b"{not json" if change is None else altered(LOG[0], change)
    fast, slow = outcome(Decoder(), value), full(value)
    assert (fast is None) == (slow is None)
    if slow is not None:
        same_event(fast, slow)


def test_an_empty_record_is_unreadable() -> None:
    with pytest.raises(Poison):
        Decoder().decode(None)
