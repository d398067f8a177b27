"""Evidence of a finding about one signal read as a series (SPEC §14, §16).

What a finding saw is kept on the log, so a chart or a postmortem outlives the source's
retention: the exact query, the analysis window and the baseline before it, the values
(bounded), the anomaly's numbers, and a link back to the source. `FindingRecorded.evidence`
holds this model's JSON form for Prometheus findings; other sources keep their own keys.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from contracts.common import Message, UtcDatetime

MAX_POINTS = 300
"""Values kept per series: the window, and as much of the baseline before it as fits."""


class AnomalyNumbers(Message):
    """How far the window departed from the baseline, in the signal's own unit.

    `score` ≥ 0 (3 and above: anomalous); `delta` is signed so that positive is worse;
    `typical` is the baseline's typical value, `peak` the worst value in the window,
    `started_at` the first anomalous moment."""

    score: float = Field(ge=0)
    delta: float
    typical: float | None = None
    peak: float | None = None
    started_at: UtcDatetime | None = None


class SeriesEvidence(Message):
    """One signal of one service over the baseline and the analysis window.

    `window` and `baseline` are ISO 8601 intervals (`start/end`, UTC); `anchor` is the
    moment the window is anchored at (the first alert's start, else the opening).
    `values` are `[unix seconds, value]`, oldest first, at most `MAX_POINTS`: every point
    of the window, preceded by the baseline thinned evenly to what fits, so a chart can
    shade the baseline and mark the change."""

    query: str
    service: str
    signal: str
    worse: Literal["up", "down"]
    window: str
    baseline: str
    anchor: UtcDatetime
    step_s: float = Field(gt=0)
    labels: dict[str, str] = Field(default_factory=dict)
    series: int = Field(ge=1, description="how many series the query returned; the worst is kept")
    values: list[tuple[float, float]] = Field(max_length=MAX_POINTS)
    anomaly: AnomalyNumbers
    link: str
