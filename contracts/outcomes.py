"""What became of a command: the decider's answer, read by whoever sent it."""

from __future__ import annotations

from typing import Literal
from uuid import UUID

from contracts.common import Message, Status

RejectionCode = Literal["invalid_transition", "version_conflict", "not_found", "validation_error"]


class CommandOutcome(Message):
    command_id: UUID
    incident_id: UUID
    accepted: bool
    code: RejectionCode | None = None
    detail: str | None = None
    field: str | None = None  # the offending field of a validation_error / version_conflict
    events: int = 0
    version: int = 0
    status: Status | None = None
