"""Decoding the log fast enough for a replay, without accepting anything the projector refuses.

Validating a whole `EventEnvelope` costs tens of microseconds, most of it in building
uuid and timestamp objects a rebuild never needs as objects. A replay decodes the
envelope with `json.loads`, checks each field against the envelope's own rules, and
validates only `data` with its pydantic model (which the read models need typed).

The fast path is a strict subset of `EventEnvelope`'s rules: a record it does not
recognise as a plainly well-formed envelope goes to the full decoder
(`projections.rejects.decode`), which accepts or refuses it exactly as the projector
does. So a rebuild applies exactly the records the live projector applied.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from pydantic import ValidationError

from contracts.common import Actor, ActorKind
from contracts.events import EVENT_TYPES, EventData, EventEnvelope
from projections.rejects import decode

ENVELOPE_KEYS = frozenset(EventEnvelope.model_fields)
_UUID_FORM = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
_UUID = re.compile(_UUID_FORM + r"\Z")
# The three ids of an envelope besides the incident's, and its two hashes, are each
# checked with one match over their concatenation (each part has a fixed length).
_THREE_UUIDS = re.compile(f"(?:{_UUID_FORM}){{3}}\\Z")
_TWO_HASHES = re.compile(r"[0-9a-f]{128}\Z")
# RFC 3339 with an offset, at most microseconds: what `seal` writes. Anything else
# (no offset, nanoseconds, a space instead of T) is left to the full decoder.
_TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,6})?(Z|[+-]\d\d:\d\d)\Z")
_ACTOR_KINDS = frozenset(kind.value for kind in ActorKind)


@dataclass(slots=True)
class DecodedEvent:
    """The envelope fields the read models use, under `EventEnvelope`'s attribute names.

    `event_id` stays text (it is only ever written to a uuid column); `data` is the
    typed fact. Duck-types `EventEnvelope` for the projections' pure functions.
    """

    event_id: str | UUID
    type: str
    incident_id: UUID
    version: int
    occurred_at: datetime
    recorded_at: datetime
    actor: Actor
    data: EventData
    hash: str
    prev_hash: str


class Decoder:
    """Decodes record values; remembers the incident ids and actors it has seen, since
    both repeat on every event of a log."""

    def __init__(self) -> None:
        self._incidents: dict[str, UUID] = {}
        self._actors: dict[tuple[str, str], Actor] = {}
        self.slow = 0  # records that needed the full decoder

    def decode(self, value: bytes | None) -> DecodedEvent | EventEnvelope:
        """The event in `value`; raises `foundation.dead_letters.Poison` exactly when the projector would."""
        fast = self._fast(value) if value is not None else None
        if fast is not None:
            return fast
        self.slow += 1
        return decode(value)

    def _fast(self, value: bytes) -> DecodedEvent | None:
        try:
            raw = json.loads(value.decode())
        except ValueError:  # UnicodeDecodeError included
            return None
        if type(raw) is not dict or raw.keys() != ENVELOPE_KEYS:
            return None
        kind, data, version = raw["type"], raw["data"], raw["version"]
        model = EVENT_TYPES.get(kind) if type(kind) is str else None
        if model is None or type(data) is not dict or type(version) is not int or version < 1:
            return None
        if type(raw["schema_version"]) is not int:
            return None
        incident = self._incident(raw["incident_id"])
        actor = self._actor(raw["actor"])
        occurred, recorded = _timestamp(raw["occurred_at"]), _timestamp(raw["recorded_at"])
        event_id, causation, correlation = raw["event_id"], raw["causation_id"], raw["correlation_id"]
        hash_, prev_hash = raw["hash"], raw["prev_hash"]
        if (incident is None or actor is None or occurred is None or recorded is None
                or type(event_id) is not str or type(causation) is not str or type(correlation) is not str
                or len(event_id) != 36 or len(causation) != 36
                or not _THREE_UUIDS.match(event_id + causation + correlation)
                or type(hash_) is not str or type(prev_hash) is not str or len(hash_) != 64
                or not _TWO_HASHES.match(hash_ + prev_hash)):
            return None
        try:
            fact = model.model_validate(data)
        except ValidationError:
            return None
        return DecodedEvent(event_id, kind, incident, version, occurred, recorded, actor, fact, hash_, prev_hash)

    def _incident(self, text: Any) -> UUID | None:
        known = self._incidents.get(text) if type(text) is str else None
        if known is None and _is_uuid(text):
            known = self._incidents[text] = UUID(text)
        return known

    def _actor(self, raw: Any) -> Actor | None:
        if type(raw) is not dict or raw.keys() != {"kind", "id"}:
            return None
        kind, ident = raw["kind"], raw["id"]
        if type(kind) is not str or type(ident) is not str:
            return None
        actor = self._actors.get((kind, ident))
        if actor is None:
            if kind not in _ACTOR_KINDS or not 1 <= len(ident) <= 200:
                return None
            actor = self._actors[(kind, ident)] = Actor(kind=kind, id=ident)
        return actor


def _is_uuid(value: Any) -> bool:
    return type(value) is str and _UUID.match(value) is not None


def _timestamp(value: Any) -> datetime | None:
    if type(value) is not str or _TIMESTAMP.match(value) is None:
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


__all__ = ["Decoder", "DecodedEvent"]
