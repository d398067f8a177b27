"""How unusual one signal of one service is in the analysis window (pure).

A source reads a signal's values over the baseline (normal behaviour, before the
window) and over the window itself, and `assess` says how far the window departs from
the baseline, in which direction is worse, when the departure began, and how many
requests it touched. Ranking (`rootcause.rank_causes`) compares these across services.

The method, and why:

- **Robust location and scale.** The typical value is the baseline's median and the
  scale its median absolute deviation (× 1.4826, a standard deviation for normal
  data): a few spikes in the baseline move neither. A baseline that is flat most of the
  time (availability at exactly 100 % with rare dips) has a MAD of 0; its mean absolute
  deviation (× 1.2533) still measures how often and how deep the dips are, so a dip the
  baseline has seen many times scores lower than one it has never seen.
- **A level shift is not a fault.** A baseline recorded at another time can sit at a
  slightly different level; with a tight baseline even a few percent then reads as a
  huge z-score. The scale is therefore never below `RELATIVE` of the signal's level,
  measured from its ideal value when known (`Observation.best`: 0 for latency, 100
  for availability in percent, where a level of 99.9 is 0.1 from ideal). A 5 % slower
  service is not anomalous however quiet its baseline was.
- **Impact.** With the request count per step (`Observation.volume`), the excess is
  also expressed as what the requests suffered: extra seconds waited in a step, failed
  requests in a step. A low-traffic service's average moves a lot on a few slow calls
  and explains little of a busy caller's trouble; ranking uses `impact` to decide
  whether a callee can account for its caller.
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
"""A score from which a signal counts as anomalous: three typical fluctuations."""

RELATIVE = 0.1
"""The smallest scale, as a fraction of the signal's distance from its ideal value: a
change below about a third of the level (`ANOMALOUS` × 10 %) is a level shift or
noise, never a fault."""

MIN_BASELINE = 6
"""Fewer baseline samples than this (half an hour at a 5-minute step) say too little
about normal behaviour to judge: the score is 0."""

_MAD_TO_SD = 1.4826
_MEAN_AD_TO_SD = 1.2533
_TINY = 1e-12


@dataclass(frozen=True)
class Observation:
    """One signal of one service: its samples before the window and in it.

    `worse` says which way is bad: latency and errors get worse going `up`,
    availability going `down`. `best` is the signal's ideal value (0 for latency and
    error rates, 100 for availability in percent): the level a relative change is
    measured against is the distance from it. Unset, it is 0 for a signal worse going
    up; for one worse going down the ideal is unknown and no level floor applies.
    `volume`, when known, is the number of requests per step over the window (the same
    step as `window`)."""

    service: str
    signal: str
    worse: Literal["up", "down"]
    baseline: Sequence[Sample]
    window: Sequence[Sample]
    best: float | None = None
    volume: Sequence[Sample] = ()


@dataclass(frozen=True)
class Anomaly:
    """How far the window departs from the baseline.

    `score` ≥ 0 (0: nothing unusual; `ANOMALOUS` and above: anomalous) is the worst
    window excess in units of the baseline's scale; `delta` is the worst window value
    minus the baseline's typical value, in the signal's unit, signed so that a positive
    delta is worse; `started_at` is the first window sample that was anomalous and
    `peak_at` the worst one. `volume` is the typical number of requests per step in
    the window and `impact` the largest excess × requests of one step (extra seconds
    waited; failed requests × 100 for a percentage), both None when the request count
    is unknown."""

    service: str
    signal: str
    score: float
    delta: float
    baseline: float | None
    peak: float | None
    started_at: datetime | None
    volume: float | None = None
    impact: float | None = None
    peak_at: datetime | None = None

    @property
    def anomalous(self) -> bool:
        return self.score >= ANOMALOUS and self.delta > 0


def _finite(samples: Sequence[Sample]) -> list[Sample]:
    return [(t, float(v)) for t, v in samples
            if v is not None and math.isfinite(v)]


def scale_of(values: Sequence[float], typical: float, best: float | None) -> float:
    """The baseline's fluctuation: MAD, else mean absolute deviation, never below
    `RELATIVE` of the distance from the ideal value when it is known (and never 0)."""
    deviations = [abs(v - typical) for v in values]
    spread = statistics.median(deviations) * _MAD_TO_SD
    if spread <= _TINY:
        spread = statistics.fmean(deviations) * _MEAN_AD_TO_SD
    level = 0.0 if best is None else RELATIVE * abs(typical - best)
    return max(spread, level, _TINY)


def assess(observation: Observation) -> Anomaly:
    """The anomaly of `observation` (a score of 0 when there is too little to judge:
    fewer than `MIN_BASELINE` finite baseline samples or no finite window sample)."""
    sign = 1.0 if observation.worse == "up" else -1.0
    base = [v for _, v in _finite(observation.baseline)]
    window = sorted(_finite(observation.window))
    volume = sorted(_finite(observation.volume))
    typical_volume = statistics.median(v for _, v in volume) if volume else None
    typical = statistics.median(base) if base else None
    if len(base) < MIN_BASELINE or not window or typical is None:
        peak = max((v for _, v in window), key=lambda v: sign * v, default=None)
        return Anomaly(observation.service, observation.signal, 0.0, 0.0, typical, peak,
                       None, typical_volume, None)
    best = observation.best
    if best is None and observation.worse == "up":
        best = 0.0
    scale = scale_of(base, typical, best)
    excess = [(t, sign * (v - typical)) for t, v in window]
    worst_t, worst = max(excess, key=lambda item: (item[1], -item[0].timestamp()))
    started = next((t for t, e in excess if e / scale >= ANOMALOUS), None)
    impact = None
    if volume:
        impact = max(max(e, 0.0) * _requests_at(volume, t, typical_volume) for t, e in excess)
    return Anomaly(observation.service, observation.signal, round(max(worst / scale, 0.0), 6),
                   round(worst, 12), typical, typical + sign * worst, started,
                   typical_volume, None if impact is None else round(impact, 9),
                   worst_t if worst > 0 else None)


def _requests_at(volume: list[Sample], at: datetime, typical: float | None) -> float:
    """Requests in the step at `at` (the typical count when that step has none)."""
    for t, v in volume:
        if t == at:
            return v
    return typical or 0.0
