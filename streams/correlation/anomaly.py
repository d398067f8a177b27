"""How unusual one signal of one service is in the analysis window (pure).

A source reads a signal's values over the baseline (normal behaviour, before the
window) and over the window itself, and `assess` says how far the window departs from
the baseline, in which direction is worse, and when the departure began. Ranking
(`rootcause.rank_causes`) compares these across services.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

Sample = tuple[datetime, float]

ANOMALOUS = 3.0
"""A score from which a signal counts as anomalous."""


@dataclass(frozen=True)
class Observation:
    """One signal of one service: its samples before the window and in it.

    `worse` says which way is bad: latency and errors get worse going `up`,
    availability going `down`."""

    service: str
    signal: str
    worse: Literal["up", "down"]
    baseline: Sequence[Sample]
    window: Sequence[Sample]


@dataclass(frozen=True)
class Anomaly:
    """How far the window departs from the baseline.

    `score` ≥ 0 (0: nothing unusual; `ANOMALOUS` and above: anomalous); `delta` is the
    worst window value minus the baseline's typical value, in the signal's unit, signed
    so that a positive delta is worse; `started_at` is the first window sample that was
    anomalous."""

    service: str
    signal: str
    score: float
    delta: float
    baseline: float | None
    peak: float | None
    started_at: datetime | None

    @property
    def anomalous(self) -> bool:
        return self.score >= ANOMALOUS


def assess(observation: Observation) -> Anomaly:
    """The anomaly of `observation` (a score of 0 when there is too little to judge)."""
    sign = 1.0 if observation.worse == "up" else -1.0
    base = [v for _, v in observation.baseline if math.isfinite(v)]
    window = [(t, v) for t, v in observation.window if math.isfinite(v)]
    if len(base) < 3 or not window:
        return Anomaly(observation.service, observation.signal, 0.0, 0.0,
                       statistics.median(base) if base else None,
                       max((sign * v for _, v in window), default=None), None)
    typical = statistics.median(base)
    spread = statistics.median(abs(v - typical) for v in base) * 1.4826
    scale = max(spread, 0.05 * abs(typical), 1e-9)
    scores = [(t, sign * (v - typical) / scale) for t, v in window]
    worst_t, worst = max(scores, key=lambda item: item[1])
    started = next((t for t, s in scores if s >= ANOMALOUS), None)
    peak = typical + sign * worst * scale
    return Anomaly(observation.service, observation.signal, round(max(worst, 0.0), 6),
                   round(sign * (peak - typical), 12), typical, peak, started)
