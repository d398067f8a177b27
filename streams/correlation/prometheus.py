"""Prometheus over its HTTP API: each configured signal (latency, errors, traffic,
saturation, restarts, deploys...) of each service a run examines.

Every PromQL expression is a template from settings (`correlation.prometheus.signals`),
so metric names, label names and windows belong to whoever runs Warroom. Reading the
answers here and judging them (`streams.correlation.signals`) are pure;
`PrometheusSource` does the calls.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from typing import Any, TypeVar

import httpx

from streams.correlation.model import Finding, HttpSource, IncidentFacts, Scope, SourceReport, settle
from streams.correlation.resilience import Calls, QueryRejected, SourceUnreachable
from streams.correlation.signals import judge, query_range_of, signal_queries, split
from streams.correlation.templates import prometheus_graph_link, seconds
from foundation.settings import PrometheusSource as PrometheusSettings

T = TypeVar("T")


@dataclass(frozen=True)
class Series:
    labels: dict[str, str]
    samples: tuple[tuple[datetime, float], ...]

    @property
    def last(self) -> float:
        return self.samples[-1][1]


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


async def all_or_first_error(work: list[Coroutine[Any, Any, T]]) -> list[T]:
    """The results of `work`, run concurrently, in order; the first error raised, once
    every other piece is cancelled (an unreachable source is not asked further)."""
    tasks = [asyncio.ensure_future(piece) for piece in work]
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION) if tasks else (set(), set())
        for task in tasks:
            if task in done and task.exception() is not None:
                raise task.exception()  # type: ignore[misc]
        return [task.result() for task in tasks]
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


class PrometheusSource(HttpSource):
    """Reads every configured signal of every service in the run's scope, over the
    baseline and the analysis window, and reports the anomalous ones (`signals.judge`)."""

    name = "prometheus"
    client_type = PrometheusClient
    settings: PrometheusSettings
    client: PrometheusClient | None

    async def investigate(self, incident: IncidentFacts, scope: Scope, calls: Calls) -> SourceReport:
        assert self.client is not None
        client, settings, window = self.client, self.settings, scope.window
        start, step = query_range_of(window, seconds(settings.step))
        plan = [(service, name, settings.signals[name], query)
                for service in scope.services for name, query in signal_queries(settings, service).items()]
        slots = asyncio.Semaphore(settings.concurrency)

        async def ask(query: str) -> list[Series] | QueryRejected:
            async with slots:
                calls.note(query)
                try:
                    return await calls.call("prometheus query_range",
                                            partial(client.query_range, query, start, window.end, step))
                except QueryRejected as exc:
                    return exc

        answers = await all_or_first_error([ask(query) for *_, query in plan])
        failed: list[str] = []
        no_data: list[str] = []
        findings: list[Finding] = []
        answered = 0
        # Each service's request count over the window weighs its anomalies (ranking).
        volumes = {service: split(answer[0].samples, window)[1]
                   for (service, name, _, _), answer in zip(plan, answers, strict=True)
                   if name == settings.volume and isinstance(answer, list) and answer}
        for (service, name, signal, query), answer in zip(plan, answers, strict=True):
            if isinstance(answer, QueryRejected):
                failed.append(f"{name} of {service}: {answer}")
            elif not answer:
                # The incident's own service must have every signal: a wrong metric or
                # label name shows here. A dependency without a series is simply not measured.
                if service == scope.symptom:
                    no_data.append(f"{name}: no series for {query}")
            else:
                answered += 1
                finding = judge(service, name, signal, query, answer, window, step,
                                prometheus_graph_link(client.base_url, query,
                                                      (window.end - start).total_seconds(), window.end),
                                volumes.get(service, ()))
                if finding is not None:
                    findings.append(finding)
        return settle(no_data, failed, findings, answered)
