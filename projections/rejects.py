"""Records the projector cannot read go to the dead-letter topic, and it goes on.

A record on `events` that is not valid JSON or not a valid event envelope is
published to `<prefix>.dlq` with its original bytes (base64), where it came
from and why it was refused; its offset still counts as consumed.
"""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from typing import Any

from aiokafka.structs import ConsumerRecord
from pydantic import ValidationError

from contracts.events import EventEnvelope


class Unreadable(ValueError):
    """A record that is not an event; `reason` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def decode(value: bytes | None) -> EventEnvelope:
    """The event in a record's value; raises `Unreadable` with a short reason."""
    if value is None:
        raise Unreadable("empty record (no value)")
    try:
        return EventEnvelope.model_validate_json(value)
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "(root)"
        kind = "invalid JSON" if first["type"] == "json_invalid" else "invalid event"
        return _raise(f"{kind}: {where}: {first['msg']} ({err.error_count()} error(s))")


def _raise(reason: str) -> Any:
    raise Unreadable(reason)


def dead_letter_record(record: ConsumerRecord, reason: str, *, rejected_by: str = "projector") -> bytes:
    """The DLQ message for `record`: JSON with the original key and value in base64."""
    def b64(raw: bytes | None) -> str | None:
        return None if raw is None else base64.b64encode(raw).decode()

    return json.dumps({
        "reason": reason,
        "topic": record.topic,
        "partition": record.partition,
        "offset": record.offset,
        "key": b64(record.key),
        "value": b64(record.value),
        "rejected_by": rejected_by,
        "rejected_at": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
    }, separators=(",", ":")).encode()
