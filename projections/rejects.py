"""Records the projector cannot read go to the dead-letter topic, and it goes on.

A record on `events` that is not valid JSON or not a valid event envelope is
published to `<prefix>.dlq` (in the shared format of `foundation.dead_letters`)
with its original bytes, where it came from and why it was refused; its
offset still counts as consumed.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from contracts.events import EventEnvelope
from foundation.dead_letters import Poison


def decode(value: bytes | None) -> EventEnvelope:
    """The event in a record's value; raises `Poison` with a short reason."""
    if value is None:
        raise Poison("empty record (no value)")
    try:
        return EventEnvelope.model_validate_json(value)
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "(root)"
        kind = "invalid JSON" if first["type"] == "json_invalid" else "invalid event"
        return _raise(f"{kind}: {where}: {first['msg']} ({err.error_count()} error(s))")


def _raise(reason: str) -> Any:
    raise Poison(reason)
