"""Alerts as producers publish them to `<prefix>.alerts` (SPEC §5)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from contracts.common import Message, UtcDatetime


class Alert(Message):
    fingerprint: str | None = Field(default=None, min_length=1, max_length=200)
    status: Literal["firing", "resolved"]
    labels: dict[str, str] = Field(min_length=1)
    annotations: dict[str, str] = Field(default_factory=dict)
    starts_at: UtcDatetime
    ends_at: UtcDatetime | None = None
    source: str | None = Field(default=None, max_length=200)
