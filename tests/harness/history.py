"""A Prometheus over history written beforehand: series with the samples a test chose,
backfilled with promtool (the same path `warroom eval petshop` takes), so a test can
analyse an incident of a fixed past moment without waiting for scrapes."""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

from warroom.petshop.backfill import backfill
from warroom.petshop.dataset import SeriesSamples
from warroom.servers import HttpServer, start_prometheus


def samples(start: datetime, end: datetime, step: timedelta, value_at: Callable[[datetime], float | None]
            ) -> list[tuple[float, float]]:
    """(unix seconds, value) every `step` from `start` to `end`; a None value is left out."""
    out, moment = [], start
    while moment <= end:
        value = value_at(moment)
        if value is not None:
            out.append((moment.timestamp(), value))
        moment += step
    return out


def wobble(moment: datetime, size: float) -> float:
    """Deterministic noise in ±size: every baseline varies a little, as real ones do."""
    return size * math.sin(moment.timestamp() / 600.0) * math.cos(moment.timestamp() / 137.0)


def start_history(work: Path, series: list[SeriesSamples]) -> HttpServer:
    """Prometheus serving exactly `series` (grouped by name, each in time order)."""
    work.mkdir(parents=True, exist_ok=True)
    backfill(sorted(series, key=lambda s: s.name), work, work / "prometheus" / "tsdb")
    return start_prometheus(work / "prometheus", scrape_targets=[], retention="100y")
