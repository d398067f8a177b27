"""Prometheus over its HTTP API: error rate, latency, traffic, saturation, restarts.

Every PromQL expression is a template from settings (`correlation.prometheus.queries`),
so metric names, label names and windows belong to whoever runs Warroom. Building the
queries and reading the answers are pure functions; `PrometheusSource` does the calls.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from streams.correlation.model import Finding, IncidentFacts, SourceReport, settle
from streams.correlation.resilience import Calls, CircuitBreaker, QueryRejected, SourceUnreachable
from streams.correlation.templates import (
    TemplateError,
    delta,
    escape_label_value,
    prometheus_graph_link,
    render,
    seconds,
)
from warroom.settings import PrometheusSource as PrometheusSettings

MAX_POINTS = 11_000  # Prometheus refuses ranges of more points than this
BASE_CONFIDENCE = {"deploys": 0.8, "restarts": 0.75, "error_rate": 0.6, "latency_p95": 0.55,
                   "saturation": 0.5}
"""How strongly each kind of threshold breach suggests a cause, before its size is counted."""


@dataclass(frozen=True)
class Series:
    labels: dict[str, str]
    samples: tuple[tuple[datetime, float], ...]

    @property
    def last(self) -> float:
        return self.samples[-1][1]


# --- queries (pure) --------------------------------------------------------------


def build_queries(settings: PrometheusSettings, service: str) -> dict[str, str]:
    """Each configured template rendered for `service`: {kind: PromQL}.

    Raises TemplateError naming the first template that cannot be rendered."""
    values = {"label": settings.service_label, "service": escape_label_value(service),
              "window": settings.window}
    return {kind: render(template, **values) for kind, template in settings.queries.items()}


# --- answers (pure) --------------------------------------------------------------


def parse_result(body: Any, query: str) -> list[Series]:
    """The series of a successful `/api/v1/query` or `/query_range` answer.

    A vector sample becomes a one-sample series; a scalar an unlabelled one. Raises
    QueryRejected for `status: error` or anything that is not a Prometheus answer."""
    if not isinstance(body, dict) or "status" not in body:
        raise QueryRejected(f"not a Prometheus API answer for {query!r}")
    if body["status"] != "success":
        raise QueryRejected(
            f"Prometheus refused {query!r}: {body.get('errorType', 'error')}: {body.get('error', '')}")
    data = body.get("data") or {}
    kind, result = data.get("resultType"), data.get("result") or []
    if kind == "scalar" or kind == "string":
        return [Series({}, (_sample(result),))]
    if kind == "vector":
        return [Series(item.get("metric", {}), (_sample(item["value"]),)) for item in result]
    if kind == "matrix":
        return [Series(item.get("metric", {}), tuple(_sample(v) for v in item["values"]))
                for item in result]
    raise QueryRejected(f"unexpected resultType {kind!r} for {query!r}")


def _sample(pair: Sequence[Any]) -> tuple[datetime, float]:
    return datetime.fromtimestamp(float(pair[0]), UTC), float(pair[1])


def peak(series: list[Series]) -> float | None:
    """The largest finite latest value among `series` (None if none is a number)."""
    values = [s.last for s in series if math.isfinite(s.last)]
    return max(values) if values else None


def breach_start(series: list[Series], threshold: float, range_start: datetime | None = None,
                 step_s: float | None = None) -> datetime | None:
    """When the latest stretch above `threshold` began: the last sample that rose above
    it, earliest across series.

    The latest stretch, not the first blip, is what the incident is about. Given the
    range's start and step, a stretch without samples (the series did not exist yet,
    e.g. no 5xx had ever been counted) counts as below. A series above from the start
    of the range has no such moment: it did not change within the range, which is
    weaker evidence of a cause than a fresh change."""
    gap = timedelta(seconds=1.5 * step_s) if step_s else None
    starts = []
    for one in series:
        start = None
        # (time, value) of the sample before; a range start stands for "above" so that a
        # series beginning right at it does not count as rising.
        previous: tuple[datetime, float] | None = (range_start, math.inf) if range_start else None
        for moment, value in one.samples:
            if not math.isfinite(value):
                continue
            if previous is not None and value > threshold:
                missing = gap is not None and moment - previous[0] > gap
                if previous[1] <= threshold or missing:
                    start = moment
            previous = (moment, value)
        if start is not None:
            starts.append(start)
    return min(starts) if starts else None


def confidence(kind: str, value: float, threshold: float) -> float:
    """Base confidence of `kind`, raised toward 0.95 the further `value` exceeds
    `threshold` (fully at twice the threshold; for a zero threshold, at 3)."""
    base = BASE_CONFIDENCE.get(kind, 0.5)
    excess = (value - threshold) / threshold if threshold > 0 else value / 3
    return round(base + (0.95 - base) * min(max(excess, 0.0), 1.0), 3)


def describe(kind: str, value: float, threshold: float, window: str) -> str:
    """A one-line summary of a breach, in the unit the kind is measured in."""
    if kind == "error_rate":
        return f"error rate {value:.2%} over {window} (threshold {threshold:.2%})"
    if kind == "latency_p95":
        return f"p95 latency {value:.3g} s over {window} (threshold {threshold:g} s)"
    if kind == "saturation":
        return f"saturation {value:.0%} over {window} (threshold {threshold:.0%})"
    if kind in ("restarts", "deploys"):
        return f"{value:g} process restart(s) or deploy(s) in the last {window}"
    return f"{kind} is {value:.4g} over {window} (threshold {threshold:g})"


# --- calls -----------------------------------------------------------------------


class PrometheusClient:
    """The two query endpoints, with every failure sorted into retry or not."""

    def __init__(self, base_url: str, http: httpx.AsyncClient) -> None:
        self.base_url = base_url.rstrip("/")
        self.http = http

    async def query(self, expr: str, at: datetime) -> list[Series]:
        return await self._get("/api/v1/query", expr, {"query": expr, "time": f"{at.timestamp():.3f}"})

    async def query_range(self, expr: str, start: datetime, end: datetime, step_s: float) -> list[Series]:
        params = {"query": expr, "start": f"{start.timestamp():.3f}", "end": f"{end.timestamp():.3f}",
                  "step": f"{step_s:g}"}
        return await self._get("/api/v1/query_range", expr, params)

    async def _get(self, path: str, expr: str, params: dict[str, str]) -> list[Series]:
        url = self.base_url + path
        try:
            response = await self.http.get(url, params=params)
        except httpx.TimeoutException as exc:
            raise SourceUnreachable(
                f"Prometheus at {self.base_url} did not answer in time ({type(exc).__name__})") from None
        except httpx.TransportError as exc:
            raise SourceUnreachable(f"Prometheus at {self.base_url} unreachable: {type(exc).__name__}: {exc}") from None
        if response.status_code >= 500 or response.status_code == 429:
            raise SourceUnreachable(
                f"Prometheus answered HTTP {response.status_code} to {expr!r}: {_error_text(response)}")
        try:
            body = response.json()
        except ValueError:
            raise QueryRejected(f"HTTP {response.status_code} from {url} is not a Prometheus API answer") from None
        return parse_result(body, expr)


def _error_text(response: httpx.Response) -> str:
    try:
        return str(response.json().get("error", ""))[:500]
    except ValueError:
        return response.text[:500]


# --- the source ------------------------------------------------------------------


class PrometheusSource:
    """Asks Prometheus each configured query about the incident's service."""

    name = "prometheus"

    def __init__(self, settings: PrometheusSettings, breaker: CircuitBreaker,
                 http: httpx.AsyncClient | None = None) -> None:
        self.settings = settings
        self.breaker = breaker
        self._http = http
        self.client = PrometheusClient(settings.url, http) if settings.url and http else None

    def unavailable_reason(self) -> str | None:
        if self.client is None:
            return "not configured: correlation.prometheus.url is not set"
        return None

    async def aclose(self) -> None:
        if self._http is not None:
            await self._http.aclose()

    async def investigate(self, incident: IncidentFacts, calls: Calls) -> SourceReport:
        assert self.client is not None
        client, settings, now = self.client, self.settings, calls.clock.now()
        failed: list[str] = []
        no_data: list[str] = []
        findings: list[Finding] = []
        answered = 0
        values = {"label": settings.service_label, "service": escape_label_value(incident.service),
                  "window": settings.window}
        for kind, template in settings.queries.items():
            try:
                expr = render(template, **values)
            except TemplateError as exc:
                failed.append(f"{kind}: {exc}")
                continue
            calls.note(expr)
            try:
                series = await calls.call(f"prometheus {kind}", partial(client.query, expr, now))
            except QueryRejected as exc:
                failed.append(f"{kind}: {exc}")
                continue
            if not series:
                no_data.append(f"{kind}: no series for {expr}")
                continue
            answered += 1
            finding = await self._judge(client, kind, expr, series, incident, calls, now)
            if finding is not None:
                findings.append(finding)
        return settle(no_data, failed, findings, answered)

    async def _judge(self, client: PrometheusClient, kind: str, expr: str, series: list[Series],
                     incident: IncidentFacts, calls: Calls, now: datetime) -> Finding | None:
        threshold = self.settings.thresholds.get(kind)
        value = peak(series)
        if threshold is None or value is None or not value > threshold:
            return None
        start = min(incident.opened_at, now) - delta(self.settings.lookback)
        step = max(seconds(self.settings.step), (now - start).total_seconds() / MAX_POINTS)
        evidence: dict[str, Any] = {
            "query": expr, "window": self.settings.window, "value": value, "threshold": threshold,
            "at": now.isoformat(),
            "series": [{"labels": s.labels, "value": s.last if math.isfinite(s.last) else None}
                       for s in series[:10]],
            "link": prometheus_graph_link(client.base_url, expr,
                                          (now - start).total_seconds(), now),
        }
        changed_at = None
        try:
            history = await calls.call(f"prometheus {kind} history",
                                       partial(client.query_range, expr, start, now, step))
        except QueryRejected as exc:
            evidence["history_error"] = str(exc)
        else:
            changed_at = breach_start(history, threshold, start, step)
            evidence["history"] = {"start": start.isoformat(), "end": now.isoformat(), "step_s": step}
            if changed_at is None:
                evidence["history"]["note"] = "above the threshold since the start of the range"
        return Finding(kind=kind, summary=describe(kind, value, threshold, self.settings.window),
                       confidence=confidence(kind, value, threshold), evidence=evidence,
                       changed_at=changed_at)

