"""A run analyses the incident's own time: anchored at the first alert's start, else at
the opening; never at the wall clock, and never past the run's own time."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from streams.correlation.model import IncidentFacts
from streams.correlation.window import analysis_window
from foundation.settings import CorrelationSettings
from foundation.templates import delta

OPENED = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
ID = uuid.UUID("00000000-0000-4000-8000-000000000001")
DEFAULTS = CorrelationSettings()  # window 10m, settle 10m, baseline 24h


def _incident(alert_started_at: datetime | None = None) -> IncidentFacts:
    return IncidentFacts(ID, "checkout", OPENED, alert_started_at)


def test_an_incident_opened_by_hand_is_anchored_at_its_opening() -> None:
    window = analysis_window(_incident(), DEFAULTS, now=OPENED + timedelta(hours=1))
    assert window.anchor == OPENED
    assert (window.start, window.end) == (OPENED - timedelta(minutes=10), OPENED + timedelta(minutes=10))
    assert (window.baseline_start, window.baseline_end) == (window.start - timedelta(hours=24), window.start)


def test_an_incident_from_alerts_is_anchored_at_the_first_alerts_start() -> None:
    began = OPENED - timedelta(minutes=2)
    window = analysis_window(_incident(began), DEFAULTS, now=OPENED + timedelta(hours=1))
    assert window.anchor == began and window.start == began - timedelta(minutes=10)


def test_a_late_alert_is_analysed_as_it_happened_not_when_it_arrived() -> None:
    began = OPENED - timedelta(hours=6)  # delivered six hours after it started firing
    window = analysis_window(_incident(began), DEFAULTS, now=OPENED)
    assert (window.start, window.end) == (began - timedelta(minutes=10), began + timedelta(minutes=10))


def test_a_historical_incident_replayed_years_later_gets_the_same_window() -> None:
    assert analysis_window(_incident(), DEFAULTS, now=OPENED + timedelta(days=1)) == \
        analysis_window(_incident(), DEFAULTS, now=OPENED + timedelta(days=900))


def test_a_live_run_sees_up_to_now() -> None:
    now = OPENED + timedelta(minutes=3)  # the settle period has not passed yet
    window = analysis_window(_incident(), DEFAULTS, now=now)
    assert window.end == now and window.start == OPENED - timedelta(minutes=10)


def test_an_alert_from_a_clock_ahead_of_ours_counts_as_now() -> None:
    window = analysis_window(_incident(OPENED + timedelta(minutes=5)), DEFAULTS, now=OPENED)
    assert window.anchor == window.end == OPENED


@pytest.mark.parametrize(("window", "settle", "baseline"), [("5m", "0s", "1h"), ("30m", "15m", "7d")])
def test_the_lengths_come_from_settings(window: str, settle: str, baseline: str) -> None:
    settings = CorrelationSettings(window=window, settle=settle, baseline=baseline)
    got = analysis_window(_incident(), settings, now=OPENED + timedelta(days=30))
    assert got.start == OPENED - delta(window) and got.end == OPENED + delta(settle)
    assert got.baseline_start == got.start - delta(baseline)


def test_the_window_reads_as_iso_intervals() -> None:
    window = analysis_window(_incident(), DEFAULTS, now=OPENED + timedelta(hours=1))
    assert window.interval() == "2024-05-01T11:50:00Z/2024-05-01T12:10:00Z"
    assert window.baseline_interval() == "2024-04-30T11:50:00Z/2024-05-01T11:50:00Z"
