"""The tamper-evident hash chain of an incident's events (SPEC §2).

`hash` is SHA-256 over the canonical JSON of the envelope without `hash`: keys sorted,
no spaces, UTF-8, field aliases (`from`), timestamps as RFC 3339 UTC with `Z`. Each
event's `prev_hash` is the previous event's `hash` (64 zeros for version 1), so
changing, removing or reordering any event breaks every later link.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from uuid import UUID

from contracts.common import Actor
from contracts.events import SCHEMA_VERSION, ZERO_HASH, EventData, EventEnvelope
from foundation.canonical_json import canonical_bytes


def canonical(envelope: EventEnvelope) -> bytes:
    """The exact bytes the hash covers: the envelope without `hash`, canonically encoded.

    `seal` stores every timestamp in UTC, so pydantic's JSON form of them is already the
    RFC 3339 `Z` form; what is hashed is the wire JSON with sorted keys and no spaces.
    """
    return canonical_bytes(envelope.model_dump(mode="json", by_alias=True, exclude=_WITHOUT_HASH))


def _in_utc(data: EventData) -> EventData:
    updates = {
        name: value.astimezone(UTC)
        for name, value in data.__dict__.items()
        if isinstance(value, datetime) and value.utcoffset()
    }
    return data.model_copy(update=updates) if updates else data


_ENVELOPE_FIELDS = frozenset(EventEnvelope.model_fields)
_WITHOUT_HASH = frozenset({"hash"})


def _envelope(fields: dict) -> EventEnvelope:
    """`EventEnvelope.model_construct(**fields)` for a complete set of validated fields.

    pydantic's `model_construct` looks up aliases and defaults field by field, which is a
    fifth of sealing; every field is given here, so the model is assembled the way
    `model_construct` assembles it (`tests/unit/test_chain.py` holds the two equal)."""
    envelope = EventEnvelope.__new__(EventEnvelope)
    object.__setattr__(envelope, "__dict__", fields)
    object.__setattr__(envelope, "__pydantic_fields_set__", set(_ENVELOPE_FIELDS))
    object.__setattr__(envelope, "__pydantic_extra__", None)
    object.__setattr__(envelope, "__pydantic_private__", None)
    return envelope


def digest(envelope: EventEnvelope) -> str:
    """The hash the envelope must carry, whatever it carries now."""
    return hashlib.sha256(canonical(envelope)).hexdigest()


def seal(
    *,
    event_id: UUID,
    incident_id: UUID,
    version: int,
    data: EventData,
    occurred_at: datetime,
    recorded_at: datetime,
    causation_id: UUID,
    correlation_id: UUID,
    actor: Actor,
    prev_hash: str,
) -> EventEnvelope:
    """Build the envelope for `data` and give it the hash that links it to `prev_hash`.

    Every timestamp, in the envelope and in `data`, is stored in UTC, so the wire form
    and the hashed form agree.
    """
    # Every field is already a validated value, so the envelope is built without
    # validating it again (half the cost of sealing), and its hash is written into it
    # before anyone else can see it rather than by copying it (a tenth).
    envelope = _envelope({
        "event_id": event_id,
        "type": data.event_type,
        "schema_version": SCHEMA_VERSION,
        "incident_id": incident_id,
        "version": version,
        "occurred_at": occurred_at.astimezone(UTC),
        "recorded_at": recorded_at.astimezone(UTC),
        "causation_id": causation_id,
        "correlation_id": correlation_id,
        "actor": actor,
        "prev_hash": prev_hash,
        "hash": ZERO_HASH,
        "data": _in_utc(data),
    })
    envelope.__dict__["hash"] = digest(envelope)
    return envelope


@dataclass(frozen=True, slots=True)
class AuditResult:
    """What checking an incident's log found. `events` counts distinct versions checked."""

    valid: bool
    events: int
    first_bad_version: int | None = None


def verify(events: Iterable[EventEnvelope]) -> AuditResult:
    """Check versions 1..n without gaps or forks, the `prev_hash` links and every hash.

    An exact repeat of an event already seen (same version, same hash) is skipped:
    at-least-once delivery may append a byte-identical event twice, which is not
    tampering. A repeat with a different hash is a fork and fails the audit.
    """
    seen: dict[int, str] = {}
    incident: UUID | None = None
    prev_hash = ZERO_HASH
    for event in events:
        expected = len(seen) + 1
        if (
            event.version < expected
            and seen.get(event.version) == event.hash
            and digest(event) == event.hash
        ):
            continue
        incident = incident or event.incident_id
        if (
            event.version != expected
            or event.incident_id != incident
            or event.prev_hash != prev_hash
            or event.hash != digest(event)
        ):
            return AuditResult(valid=False, events=len(seen), first_bad_version=expected)
        seen[event.version] = event.hash
        prev_hash = event.hash
    return AuditResult(valid=True, events=len(seen))
