"""The Faust codec for our models, and the dead-letter record."""

from __future__ import annotations

import base64
import hashlib
import json
from datetime import UTC, datetime
from uuid import UUID

import pytest
from faust.serializers import codecs

from contracts.commands import ChangeStatus
from contracts.common import Actor, Status
from contracts.events import ZERO_HASH, StatusChanged
from contracts.outcomes import CommandOutcome
from foundation.chain import seal
from streams.codec import COMMAND, EVENT, INCIDENT_STATE, OUTCOME, register_codecs
from foundation.dead_letters import HEADROOM, REASON_MAX, dead_letter, letter_limit
from contracts.silences import Matcher
from streams.applied import Applied, encode_applied
from streams.incident import Cause, Incident, Run
from streams.silence import Silence

ID = UUID("00000000-0000-4000-8000-000000000001")
T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
LIMIT = letter_limit(1_048_576)


@pytest.fixture(scope="module", autouse=True)
def _codecs() -> None:
    register_codecs()
    register_codecs()  # idempotent


def test_events_round_trip_with_the_wire_aliases() -> None:
    event = seal(event_id=ID, incident_id=ID, version=1, occurred_at=T0, recorded_at=T0,
                 data=StatusChanged(from_=Status.OPEN, to=Status.MITIGATED), causation_id=ID,
                 correlation_id=ID, actor=Actor(kind="system", id="warroom"), prev_hash=ZERO_HASH)
    raw = codecs.dumps(EVENT, event)
    assert raw == event.model_dump_json(by_alias=True).encode()
    assert json.loads(raw)["data"]["from"] == "open"
    assert codecs.loads(EVENT, raw) == event


def test_commands_decode_by_their_type() -> None:
    command = ChangeStatus(command_id=ID, incident_id=ID, actor=Actor(kind="user", id="a"),
                           issued_at=T0, to=Status.RESOLVED, reason="fixed")
    assert codecs.loads(COMMAND, codecs.dumps(COMMAND, command)) == command
    with pytest.raises(ValueError):
        codecs.loads(COMMAND, b'{"type": "Nope"}')


STATES = [
    None,
    Incident(title="t — été", service="s", status="resolved", severity="critical", version=90,
             last_hash="ab" * 32, acknowledged=True, firing=frozenset({"a", "b", "c"}),
             runs=(Run(run_id=ID, sources=("prometheus", "loki"), started=frozenset({"loki"})),),
             root_cause=Cause(service="db", note='"pool" \\ exhausted'),
             recent_commands=tuple(str(UUID(int=n)) for n in range(64)),
             recent_keys=tuple(f"key-{n}" for n in range(32)), opened_at=T0,
             first_alert_at=datetime(2024, 5, 1, 12, 0, 0, 5, tzinfo=UTC), escalations=("e:1:ops",)),
    Silence(version=2, last_hash=ZERO_HASH, matchers=(Matcher(label="service", op="=", value="checkout"),),
            starts_at=T0, ends_at=T0, recent_commands=(str(ID),), swallowed=("f@x",)),
]


@pytest.mark.parametrize("state", STATES)
def test_table_states_are_written_as_pydantic_writes_them(state) -> None:
    for offset in (-1, 0, 2**40):
        applied = Applied(state=state, through_offset=offset)
        raw = codecs.dumps(INCIDENT_STATE, applied)
        assert raw == encode_applied(applied) == applied.model_dump_json(by_alias=True).encode()
        assert codecs.loads(INCIDENT_STATE, raw) == applied


def test_outcomes_and_incident_state_round_trip() -> None:
    outcome = CommandOutcome(command_id=ID, incident_id=ID, accepted=False,
                             code="validation_error", detail="needs a reason", field="reason")
    assert codecs.dumps(OUTCOME, outcome) == outcome.model_dump_json(by_alias=True).encode()
    assert codecs.loads(OUTCOME, codecs.dumps(OUTCOME, outcome)) == outcome
    state = Incident(title="t", service="s", status="open", severity="low", version=3,
                     last_hash=ZERO_HASH, firing=frozenset({"a", "b"}), recent_commands=(str(ID),))
    applied = Applied(state=state, through_offset=41)
    assert codecs.loads(INCIDENT_STATE, codecs.dumps(INCIDENT_STATE, applied)) == applied


def test_a_dead_letter_keeps_the_original_bytes_reason_and_origin() -> None:
    key, value, headers = dead_letter(b"\xff\x00not json", b"k", "warroom.commands", 3, 42,
                                      "not valid JSON", at=T0, limit=LIMIT)
    letter = json.loads(value)
    assert key == b"k"
    assert base64.b64decode(letter["original_base64"]) == b"\xff\x00not json"
    assert letter["original_text"] is None
    assert letter | {"original_base64": None} == {
        "reason": "not valid JSON", "topic": "warroom.commands", "partition": 3, "offset": 42,
        "at": "2024-05-01T12:00:00Z", "key": "k", "size": 10,
        "sha256": hashlib.sha256(b"\xff\x00not json").hexdigest(), "truncated": False,
        "original_base64": None, "original_text": None}
    assert dict(headers)["warroom-source"] == b"warroom.commands/3/42"
    assert dict(headers)["warroom-original-size"] == b"10"
    assert json.loads(dead_letter(b"{}", None, "t", 0, 0, "r", limit=LIMIT)[1])["original_text"] == "{}"


@pytest.mark.parametrize("original", [
    b"x" * 460_000,  # text and base64 of it together are over a megabyte
    "é".encode() * 600_000,  # two bytes a character: the text cut must not split one
    b"\x01" * 300_000,  # the text would take six bytes a byte (\u0001)
    bytes(range(256)) * 8_000,  # not UTF-8 at all
    b"y" * 5_000_000,  # larger than any broker would have delivered by default
])
def test_a_dead_letter_of_any_size_fits_its_limit_and_names_the_whole_original(original: bytes) -> None:
    key, value, headers = dead_letter(original, b"k" * 5000, "warroom.alerts", 0, 7, "not valid JSON: " + "?" * 9000,
                                      limit=LIMIT)
    assert len(value) <= LIMIT
    letter = json.loads(value)
    assert letter["truncated"] is (letter["kept_bytes"] < len(original)) is (len(original) > 300_000)
    assert (letter["size"], letter["sha256"]) == (len(original), hashlib.sha256(original).hexdigest())
    kept = base64.b64decode(letter["original_base64"])
    assert len(kept) == letter["kept_bytes"] >= min(len(original), LIMIT // 3) and original.startswith(kept)
    if letter["original_text"] is not None:
        assert original.startswith(letter["original_text"].encode())
    assert len(letter["reason"]) <= REASON_MAX
    # A key longer than a key needs to be is replaced by its digest, in the record and the letter.
    assert key == hashlib.sha256(b"k" * 5000).hexdigest().encode() and letter["key"] == key.decode()
    assert sum(len(name) + len(raw) for name, raw in headers) + len(key) + len(value) <= LIMIT + HEADROOM


def test_the_worker_decodes_a_command_record_or_says_why_not() -> None:
    from streams.worker import Poison, parse

    command = ChangeStatus(command_id=ID, incident_id=ID, actor=Actor(kind="user", id="a"),
                           issued_at=T0, to=Status.MITIGATED)
    raw = command.model_dump_json().encode()
    assert parse(str(ID).encode(), raw) == command
    for key, value, reason in [
        (str(ID).encode(), b"\xff{", "not valid JSON"),
        (str(ID).encode(), b'{"type": "ChangeStatus"}', "not a valid command: ChangeStatus.command_id"),
        (str(ID).encode(), b'{"type": "Reboot"}', "not a valid command"),
        (b"someone-else", raw, "is not its incident_id"),
        (None, raw, "is not its incident_id"),
        (str(ID).encode(), None, "empty message"),
        (str(ID).encode(), raw + b" " * 1000, "too large"),
    ]:
        with pytest.raises(Poison) as poison:
            parse(key, value, max_bytes=len(raw) + 999)
        assert reason in poison.value.reason
