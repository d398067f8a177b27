"""How a chart's numbers and times read: the unit a signal's values are in, and the
labels of value and time ticks (pure; `projections.history.series_chart` draws with them)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal


@dataclass(frozen=True)
class Unit:
    """How a signal's values read: `name` for the title, `kind` for the numbers."""

    name: str | None
    kind: Literal["seconds", "ratio", "rate", "count", "plain"]
    suffix: str = ""

    def format(self, value: float) -> str:
        """One value as a person reads it (three significant digits)."""
        return self._scaled(value, abs(value), None)

    def ticks(self, values: list[float]) -> list[str]:
        """Tick labels for `values` (evenly spaced): one scale for all, as precise as the spacing."""
        step = values[1] - values[0] if len(values) > 1 else None
        top = max((abs(v) for v in values), default=0.0)
        return [self._scaled(v, top, step) for v in values]

    def _scaled(self, value: float, top: float, step: float | None) -> str:
        if self.kind == "seconds":
            if top < 1:
                return f"{number(value * 1000, step and step * 1000)} ms"
            return f"{number(value, step)} s"
        if self.kind == "ratio":
            return f"{number(value * 100, step and step * 100)}%"
        return f"{number(value, step)}{self.suffix}"


def number(value: float, step: float | None) -> str:
    """`value` with as many decimals as `step` needs, else with three significant digits."""
    if step:
        decimals = next((d for d in range(7) if abs(step * 10**d - round(step * 10**d)) < 1e-6 * 10**d), 6)
        return f"{value:,.{decimals}f}"
    if value == 0:
        return "0"
    decimals = min(6, max(0, 2 - math.floor(math.log10(abs(value)))))
    text = f"{value:,.{decimals}f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


UNITS: Mapping[str, Unit] = {
    "latency": Unit("seconds", "seconds"),
    "errors": Unit("share of requests", "ratio"),
    "availability": Unit("share of requests", "ratio"),
    "traffic": Unit("requests/s", "rate", " req/s"),
    "saturation": Unit("CPU cores", "rate", " cores"),
    "restarts": Unit("restarts", "count"),
    "deploys": Unit("deploys", "count"),
    "log_errors": Unit("error lines", "count"),
}
PLAIN = Unit(None, "plain")


def unit_of(signal: str) -> Unit:
    """The unit a signal's values are in, where its name tells it."""
    return UNITS.get(signal, PLAIN)


TIME_STEPS = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400)


def time_step(span: float, most: int) -> float:
    """The spacing, in seconds, of at most `most` time ticks over `span` seconds."""
    return next((float(s) for s in TIME_STEPS if span / s <= most), float(TIME_STEPS[-1]))


def tick(t: float, spacing: float, span: float) -> str:
    """The label of the time tick at `t`, as precise as the spacing needs."""
    moment = datetime.fromtimestamp(t, UTC)
    if span >= 12 * 3600:
        return moment.strftime("%d %b %H:%M")
    return moment.strftime("%H:%M:%S" if spacing < 60 else "%H:%M")


def clock(t: float, *, seconds: bool = False) -> str:
    """`t` as a UTC time of day."""
    return datetime.fromtimestamp(t, UTC).strftime("%H:%M:%S" if seconds else "%H:%M")


def when(t: float) -> str:
    """`t` as a UTC date and time."""
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%d %H:%M:%S")
