"""Recurring maintenance windows (SPEC §15): the settings model and when a window is open.

A window opens on each of its `days` at `start` in its `timezone` and stays open for
`duration_m` minutes; while it is open, alerts matching its matchers are silenced, as by
a silence created through the API. Times are computed, never slept on: whoever takes an
alert in asks `covers(at)` with the alert's own timestamp.
"""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from typing import Literal
from uuid import NAMESPACE_URL, UUID, uuid5
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator

from contracts.silences import Matcher

Day = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
DAYS: tuple[Day, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def window_stream(name: str) -> UUID:
    """The id of the log stream recording what window `name` swallowed: the same on every
    worker, gateway and restart."""
    return uuid5(NAMESPACE_URL, f"warroom:maintenance-window:{name}")


class MaintenanceWindow(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, max_length=200)
    matchers: list[Matcher] = Field(min_length=1)
    days: list[Day] = Field(default_factory=lambda: list(DAYS), min_length=1)
    start: time  # "HH:MM" in `timezone`
    duration_m: int = Field(ge=1, le=7 * 24 * 60)
    timezone: str = "UTC"
    comment: str = ""

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, name: str) -> str:
        try:
            ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"{name!r} is not a known time zone (e.g. UTC, Europe/Berlin)") from None
        return name

    def _openings(self, around: datetime) -> list[datetime]:
        # Every opening that could cover `around` or come within a week after it.
        zone = ZoneInfo(self.timezone)
        local = around.astimezone(zone).date()
        span = self.duration_m // (24 * 60) + 1
        openings = []
        for offset in range(-span, 8):
            day = local + timedelta(days=offset)
            if DAYS[day.weekday()] in self.days:
                openings.append(datetime.combine(day, self.start, zone).astimezone(UTC))
        return openings

    def covers(self, at: datetime) -> bool:
        """Whether the window is open at `at`."""
        length = timedelta(minutes=self.duration_m)
        return any(opening <= at < opening + length for opening in self._openings(at))

    def current_or_next(self, at: datetime) -> tuple[datetime, datetime]:
        """The opening and closing of the window open at `at`, else of the next one."""
        length = timedelta(minutes=self.duration_m)
        opening = min(o for o in self._openings(at) if at < o + length)
        return opening, opening + length
