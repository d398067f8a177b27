"""SLO impact of an incident: burn rate, error budget left, estimated cost (SPEC §4).

The arithmetic and the "has it moved enough to say so" rule are pure. `assess_impact`
asks Prometheus for each SLO of the incident's service and returns the `AssessImpact`
commands worth sending.
"""

from __future__ import annotations

import logging
import math
import uuid
from functools import partial
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

import httpx

from contracts.commands import AssessImpact
from contracts.common import SYSTEM
from streams.correlation.model import IncidentFacts
from streams.correlation.prometheus import PrometheusClient, peak
from streams.correlation.resilience import (
    SYSTEM_CLOCK,
    Calls,
    CircuitBreaker,
    Clock,
    Policy,
    SourceError,
)
from streams.correlation.templates import TemplateError, render
from foundation.settings import SLO, Settings

log = logging.getLogger(__name__)


class ImpactNumbers(Protocol):
    """The numbers of a past assessment: ImpactAssessed events and AssessImpact commands fit."""

    @property
    def burn_rate(self) -> float: ...
    @property
    def error_budget_left(self) -> float: ...
    @property
    def estimated_cost(self) -> float | None: ...


@dataclass(frozen=True)
class Impact:
    slo: str
    burn_rate: float
    error_budget_left: float
    estimated_cost: float | None
    window: str


def failing_fraction(good: float, total: float) -> float | None:
    """Share of requests that failed (0..1); None without traffic."""
    if not (math.isfinite(good) and math.isfinite(total)) or total <= 0:
        return None
    return min(max(1 - good / total, 0.0), 1.0)


def burn_rate(good: float, total: float, objective: float) -> float | None:
    """How many times faster than allowed the error budget burns: 1.0 spends exactly the
    budget over the SLO window; None without traffic."""
    failing = failing_fraction(good, total)
    return None if failing is None else failing / (1 - objective)


def error_budget_left(good: float, total: float, objective: float) -> float | None:
    """Share of the window's error budget not yet spent, from good/total over the SLO
    window: 1.0 untouched, 0 spent, negative overspent. None without traffic."""
    spent = burn_rate(good, total, objective)
    return None if spent is None else 1 - spent


def estimated_cost(cost_per_minute: float | None, minutes: float, failing: float) -> float | None:
    """`cost_per_minute` is what a minute of total outage costs; a partial outage costs
    the failing share of it, over the minutes the incident has been open."""
    if cost_per_minute is None:
        return None
    return round(cost_per_minute * max(minutes, 0.0) * failing, 2)


def assess(slo: SLO, burn: tuple[float, float], budget: tuple[float, float], minutes_open: float) -> Impact | None:
    """The impact from (good, total) over the burn window and over the SLO window;
    None when there is no traffic to judge by."""
    rate = burn_rate(*burn, slo.objective)
    left = error_budget_left(*budget, slo.objective)
    if rate is None or left is None:
        return None
    failing = failing_fraction(*burn) or 0.0
    return Impact(slo.name, round(rate, 4), round(left, 4),
                  estimated_cost(slo.cost_per_minute, minutes_open, failing), slo.window)


def should_append(previous: ImpactNumbers | None, current: ImpactNumbers, min_change: float) -> bool:
    """True for the first assessment, or when burn rate or budget left moved by more than
    `min_change`, or the cost by more than `min_change` of itself."""
    if previous is None:
        return True
    if abs(current.burn_rate - previous.burn_rate) > min_change:
        return True
    if abs(current.error_budget_left - previous.error_budget_left) > min_change:
        return True
    before, now = previous.estimated_cost, current.estimated_cost
    if (before is None) != (now is None):
        return True
    return before is not None and now is not None and abs(now - before) > min_change * max(abs(before), 1.0)


async def query_slo(slo: SLO, settings: Settings, prometheus: PrometheusClient, calls: Calls,
                    at: datetime) -> tuple[tuple[float, float], tuple[float, float]] | None:
    """((good, total) over the burn window, (good, total) over the SLO window), or None
    when a query returns no series. Raises SourceError when Prometheus cannot answer."""
    label = settings.correlation.prometheus.service_label
    answers = []
    for window in (slo.burn_window, slo.window):
        pair = []
        for template in (slo.good_query, slo.total_query):
            expr = render(template, window=window, service=slo.service, label=label)
            calls.note(expr)
            value = peak(await calls.call(f"slo {slo.name}", partial(prometheus.query, expr, at)))
            if value is None:
                log.warning("SLO %s: no series for %s", slo.name, expr)
                return None
            pair.append(value)
        answers.append((pair[0], pair[1]))
    return answers[0], answers[1]


async def assess_impact(settings: Settings, incident: IncidentFacts,
                        previous: Mapping[str, ImpactNumbers], *,
                        http: httpx.AsyncClient | None = None,
                        breaker: CircuitBreaker | None = None,
                        clock: Clock = SYSTEM_CLOCK) -> list[AssessImpact]:
    """`AssessImpact` for each SLO of the incident's service whose numbers moved more than
    `impact.min_change` since `previous[slo name]` (or were never assessed).

    An SLO whose queries fail, return nothing or see no traffic is skipped and logged:
    no assessment is better than a made-up one. `http` and `breaker` let a caller share
    the Prometheus source's connection pool and breaker.
    """
    url = settings.correlation.prometheus.url
    slos = [slo for slo in settings.impact.slos if slo.service == incident.service]
    if not slos or not url:
        return []
    own_http = http is None
    http = http or httpx.AsyncClient(timeout=settings.correlation.timeout_s)
    breaker = breaker or CircuitBreaker("prometheus", settings.correlation.breaker_failures,
                                        settings.correlation.breaker_reset_s, clock)
    prometheus = PrometheusClient(url, http)
    commands = []
    try:
        for slo in slos:
            now = clock.now()
            calls = Calls(Policy.from_settings(settings.correlation), breaker, clock)
            try:
                numbers = await query_slo(slo, settings, prometheus, calls, now)
            except (SourceError, TemplateError) as exc:
                log.warning("SLO %s of incident %s not assessed: %s", slo.name, incident.id, exc)
                continue
            minutes = (now - incident.opened_at).total_seconds() / 60
            impact = numbers and assess(slo, numbers[0], numbers[1], minutes)
            if not impact or not should_append(previous.get(slo.name), impact, settings.impact.min_change):
                continue
            commands.append(AssessImpact(
                command_id=uuid.uuid5(incident.id, f"AssessImpact:{slo.name}:{now.isoformat()}"),
                incident_id=incident.id, actor=SYSTEM, issued_at=now, slo=slo.name,
                burn_rate=impact.burn_rate, error_budget_left=impact.error_budget_left,
                estimated_cost=impact.estimated_cost, window=impact.window))
    finally:
        if own_http:
            await http.aclose()
    return commands
