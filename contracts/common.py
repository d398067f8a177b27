"""Vocabulary shared by commands, events and alerts."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field


def _utc(value: datetime) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("timestamp must carry a timezone (RFC 3339)")
    return value


UtcDatetime = Annotated[datetime, AfterValidator(_utc)]
"""An RFC 3339 timestamp; naive datetimes are refused rather than guessed."""


class Status(StrEnum):
    OPEN = "open"
    INVESTIGATING = "investigating"
    MITIGATED = "mitigated"
    RESOLVED = "resolved"


class Severity(StrEnum):
    CRITICAL = "critical"
    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"


class ActorKind(StrEnum):
    USER = "user"
    SYSTEM = "system"
    SOURCE = "source"
    PRODUCER = "producer"


class Message(BaseModel):
    """Base of every message on the wire: immutable, unknown fields refused."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class Actor(Message):
    kind: ActorKind
    id: str = Field(min_length=1, max_length=200)


SYSTEM = Actor(kind=ActorKind.SYSTEM, id="warroom")
