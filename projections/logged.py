"""An event as read from the log, and the JSON conventions of the read models."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any
from uuid import UUID

from pydantic import BaseModel

from contracts.events import EventEnvelope


@dataclass(frozen=True, slots=True)
class LoggedEvent:
    """An event together with where it sits in the log (topic, partition, offset)."""

    event: EventEnvelope
    partition: int
    offset: int
    topic: str = ""
    # The fact as JSON text, encoded once and shared by the timeline and the change feed.
    data_json: str = field(default="", compare=False, repr=False)
    # The Kafka record it came from, when it came from Kafka (to dead-letter it if need be).
    record: Any = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        if not self.data_json:
            object.__setattr__(self, "data_json", self.event.data.model_dump_json(by_alias=True))

    @property
    def key(self) -> tuple[UUID, int]:
        return self.event.incident_id, self.event.version


def iso(value: datetime | None) -> str | None:
    """RFC 3339 in UTC with a `Z`, as the wire models write timestamps (naive means UTC)."""
    if value is None:
        return None
    text = value.isoformat()
    if text.endswith("+00:00"):
        return text[:-6] + "Z"
    if value.tzinfo is None:
        return text + "Z"
    return value.astimezone(timezone.utc).isoformat()[:-6] + "Z"


def _default(value: Any) -> Any:
    if isinstance(value, datetime):
        return iso(value)
    if isinstance(value, UUID):
        return str(value)
    raise TypeError(f"not JSON serializable: {type(value).__name__}")


def to_json(value: Any) -> str:
    """Compact JSON for jsonb columns and the change feed (uuids and datetimes as strings)."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=_default)


def hypotheses_json(hypotheses: Sequence[BaseModel | dict[str, Any]]) -> list[dict[str, Any]]:
    """Hypotheses as JSON objects, whichever schema version wrote them: `Hypothesis`
    models (version 2) by their fields, version-1 free dicts as they are."""
    return [h.model_dump(mode="json") if isinstance(h, BaseModel) else dict(h) for h in hypotheses]


def from_json(value: str | None) -> Any:
    """A jsonb column as asyncpg returns it (text) back to Python."""
    return None if value is None else json.loads(value)

