"""Hypotheses: grouped by cause, ordered by credibility, then by what changed first."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest

from streams.correlation.ranking import combined_confidence, rank

START = datetime(2024, 5, 1, 10, 0, tzinfo=UTC)


@dataclass(frozen=True)
class F:
    source: str
    kind: str
    confidence: float
    minutes: float | None = None  # relative to the incident start
    summary: str = "something"
    finding_id: uuid.UUID = None  # type: ignore[assignment]

    def __post_init__(self) -> None:
        object.__setattr__(self, "finding_id", uuid.uuid5(uuid.NAMESPACE_URL, f"{self.source}:{self.kind}"))

    @property
    def changed_at(self) -> datetime | None:
        return None if self.minutes is None else START + timedelta(minutes=self.minutes)


def _order(*findings: F) -> list[str]:
    return [h["category"] for h in rank(findings, START)]


def test_a_deploy_before_the_error_spike_ranks_above_the_spike() -> None:
    deploy = F("kubernetes", "rollout", 0.6, minutes=-3)
    spike = F("prometheus", "error_rate", 0.95, minutes=-2)
    assert _order(spike, deploy) == ["change", "errors"]


def test_a_restart_after_the_spike_ranks_below_it() -> None:
    spike = F("prometheus", "error_rate", 0.7, minutes=-2)
    restart = F("prometheus", "restarts", 0.9, minutes=+4)  # a mitigation, not the cause
    assert _order(restart, spike) == ["errors", "change"]


@pytest.mark.parametrize(("minutes_a", "minutes_b", "expected"), [
    (-5, -5, ["crash", "latency"]),    # same moment: confidence decides
    (None, None, ["crash", "latency"]),
    (None, -1, ["latency", "crash"]),  # a known change time beats an unknown one
])
def test_ties_and_unknown_times_go_by_confidence(minutes_a, minutes_b, expected) -> None:
    a = F("kubernetes", "oom_killed", 0.8, minutes=minutes_a)
    b = F("prometheus", "latency_p95", 0.6, minutes=minutes_b)
    assert _order(b, a) == expected


def test_weak_hypotheses_follow_credible_ones_whatever_their_time() -> None:
    weak_early = F("prometheus", "saturation", 0.3, minutes=-20)
    credible_late = F("prometheus", "error_rate", 0.6, minutes=-1)
    assert _order(weak_early, credible_late) == ["errors", "saturation"]


def test_findings_of_one_cause_from_several_sources_form_one_hypothesis() -> None:
    findings = [F("prometheus", "error_rate", 0.8, minutes=-2, summary="error rate 12% over 5m"),
                F("loki", "log_errors", 0.6, minutes=-3), F("loki", "error_patterns", 0.45)]
    [hypothesis] = rank(findings, START)
    assert hypothesis["rank"] == 1
    assert hypothesis["summary"] == "An error spike: error rate 12% over 5m (seen by loki, prometheus)"
    assert hypothesis["sources"] == ["loki", "prometheus"]
    assert hypothesis["finding_ids"] == [str(f.finding_id) for f in findings]
    assert hypothesis["changed_at"] == (START - timedelta(minutes=3)).isoformat()
    assert hypothesis["relative_to_start_s"] == -180
    assert hypothesis["confidence"] == pytest.approx(1 - 0.2 * 0.4)


def test_combined_confidence_counts_each_source_once_and_stays_below_one() -> None:
    assert combined_confidence([F("loki", "log_errors", 0.6), F("loki", "error_patterns", 0.45)]) == 0.6
    assert combined_confidence([F("a", "x", 0.99), F("b", "x", 0.99)]) == 0.99


def test_unknown_kinds_are_their_own_cause_and_ranks_are_consecutive() -> None:
    hypotheses = rank([F("prometheus", "queue_depth", 0.7, minutes=-4), F("prometheus", "error_rate", 0.7, -1),
                       F("kubernetes", "rollout", 0.8, -6)], START)
    assert [(h["rank"], h["category"]) for h in hypotheses] == [(1, "change"), (2, "queue_depth"), (3, "errors")]
    assert hypotheses[1]["summary"].startswith("Queue depth: ")


def test_nothing_found_means_no_hypotheses() -> None:
    assert rank([], START) == []
