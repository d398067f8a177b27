"""SLO burn rate, error budget left, estimated cost, and when a change is worth an event."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from streams.correlation import impact
from foundation.settings import SLO

SLO_999 = SLO(name="checkout-availability", service="checkout", good_query="g", total_query="t",
              objective=0.999, window="30d", cost_per_minute=120.0)


@pytest.mark.parametrize(("good", "total", "expected"), [
    (999, 1000, 1.0),      # failing exactly at the allowed rate
    (990, 1000, 10.0),
    (1000, 1000, 0.0),
    (0, 1000, 1000.0),     # everything fails: 1/(1-0.999)
    (1001, 1000, 0.0),     # counters scraped a moment apart never make a negative rate
])
def test_burn_rate(good: float, total: float, expected: float) -> None:
    assert impact.burn_rate(good, total, 0.999) == pytest.approx(expected)


def test_no_traffic_has_no_burn_rate() -> None:
    assert impact.burn_rate(0, 0, 0.999) is None
    assert impact.burn_rate(float("nan"), 10, 0.999) is None


@pytest.mark.parametrize(("good", "total", "left"), [
    (1000, 1000, 1.0), (9995, 10000, 0.5), (999, 1000, 0.0), (998, 1000, -1.0),
])
def test_error_budget_left(good: float, total: float, left: float) -> None:
    assert impact.error_budget_left(good, total, 0.999) == pytest.approx(left)


def test_cost_is_the_failing_share_of_an_outage_minute_over_the_minutes_open() -> None:
    assert impact.estimated_cost(120.0, 10, 0.05) == 60.0
    assert impact.estimated_cost(None, 10, 0.05) is None
    assert impact.estimated_cost(120.0, -1, 0.5) == 0.0


def test_assess_combines_the_two_windows() -> None:
    result = impact.assess(SLO_999, burn=(950, 1000), budget=(99_990, 100_000), minutes_open=4)
    assert result == impact.Impact("checkout-availability", 50.0, 0.9, 24.0, "30d")
    assert impact.assess(SLO_999, burn=(0, 0), budget=(1, 1), minutes_open=4) is None


@dataclass
class N:
    burn_rate: float
    error_budget_left: float
    estimated_cost: float | None = None


@pytest.mark.parametrize(("previous", "current", "append"), [
    (None, N(1, 1), True),
    (N(1.0, 0.5), N(1.0, 0.5), False),
    (N(1.0, 0.5), N(1.009, 0.505), False),
    (N(1.0, 0.5), N(1.02, 0.5), True),
    (N(1.0, 0.5), N(1.0, 0.48), True),
    (N(1, 1, 100.0), N(1, 1, 100.5), False),   # within 1% of itself
    (N(1, 1, 100.0), N(1, 1, 102.0), True),
    (N(1, 1, None), N(1, 1, 0.0), True),       # a cost appears
    (N(1, 1, 0.0), N(1, 1, 0.005), False),     # small costs must move by min_change itself
])
def test_should_append(previous: N | None, current: N, append: bool) -> None:
    assert impact.should_append(previous, current, min_change=0.01) is append
