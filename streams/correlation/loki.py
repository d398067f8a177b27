"""Loki over its HTTP API: error lines versus a baseline, and the patterns they share,
for each service a run examines, within the run's analysis window.

LogQL templates, the label name and the baseline offset come from `correlation.loki`. Masking
log lines into patterns and judging the counts are pure; `LokiSource` does the calls.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

import httpx

from streams.correlation.model import Finding, HttpSource, IncidentFacts, Scope, SourceReport, settle
from streams.correlation.prometheus import Series, parse_result
from streams.correlation.resilience import Calls, QueryRejected, SourceUnreachable
from streams.correlation.templates import (
    TemplateError,
    duration_text,
    escape_label_value,
    loki_query_link,
    render,
    seconds,
)
from foundation.settings import LokiSource as LokiSettings

# Order matters: the wider shapes go first so a timestamp is not masked as numbers.
_MASKS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(?:[.,]\d+)?(?:Z|[+-]\d{2}:?\d{2})?"), "<ts>"),
    (re.compile(r"\b[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\b"), "<uuid>"),
    (re.compile(r"\b(?:\d{1,3}\.){3}\d{1,3}(?::\d{1,5})?\b"), "<ip>"),
    (re.compile(r"\b0x[0-9a-fA-F]+\b"), "<hex>"),
    (re.compile(r"\b(?=[0-9a-fA-F]*\d)(?=[0-9a-fA-F]*[a-fA-F])[0-9a-fA-F]{8,}\b"), "<hex>"),
    (re.compile(r"\d+(?:\.\d+)?"), "<n>"),
    (re.compile(r"\s+"), " "),
)


def mask(line: str) -> str:
    """The pattern of a log line: timestamps, uuids, IPs, hex ids and numbers masked,
    so lines that differ only in such values fall together."""
    for pattern, replacement in _MASKS:
        line = pattern.sub(replacement, line)
    return line.strip()


@dataclass(frozen=True)
class Pattern:
    template: str
    count: int
    sample: str


def top_patterns(lines: list[str], limit: int) -> list[Pattern]:
    """The `limit` most frequent patterns, each with its count and a first sample line."""
    counts: Counter[str] = Counter()
    samples: dict[str, str] = {}
    for line in lines:
        template = mask(line)
        counts[template] += 1
        samples.setdefault(template, line[:300])
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))[:limit]
    return [Pattern(template, count, samples[template]) for template, count in ranked]


def parse_streams(body: Any, query: str) -> list[tuple[datetime, str]]:
    """(time, line) of a log query answer (`resultType: streams`), newest first."""
    if not isinstance(body, dict) or body.get("status") != "success":
        raise QueryRejected(f"Loki refused {query!r}: {body.get('error', body) if isinstance(body, dict) else body}")
    data = body.get("data") or {}
    if data.get("resultType") != "streams":
        raise QueryRejected(f"expected log lines (streams) for {query!r}, got {data.get('resultType')!r}")
    lines = [(datetime.fromtimestamp(int(ns) / 1e9, UTC), line)
             for stream in data.get("result", []) for ns, line in stream.get("values", [])]
    return sorted(lines, key=lambda item: item[0], reverse=True)


def total(series: list[Series]) -> float:
    return sum(value for one in series for _, value in one.samples)


def per_step(series: list[Series], start: datetime, end: datetime, step_s: float) -> list[tuple[datetime, float]]:
    """Counts on the step grid from `start` to `end`, summed over series.

    Loki leaves out steps without lines, so a missing step counts zero."""
    summed: dict[int, float] = defaultdict(float)
    for one in series:
        for moment, value in one.samples:
            summed[round(moment.timestamp())] += value
    grid, moment = [], start
    while moment <= end:
        grid.append((moment, summed.get(round(moment.timestamp()), 0.0)))
        moment += timedelta(seconds=step_s)
    return grid


def rise_start(counts: list[tuple[datetime, float]], threshold: float) -> datetime | None:
    """The step where the latest stretch above `threshold` began (None when the counts
    were above from the start, or never rose)."""
    start = None
    for (_, before), (moment, value) in zip(counts, counts[1:], strict=False):
        if value > threshold >= before:
            start = moment
    return start


def errors_stand_out(current: float, baseline: float, settings: LokiSettings) -> bool:
    """More error lines than `min_error_lines`, and `error_ratio` times the baseline."""
    return current >= settings.min_error_lines and current > baseline * settings.error_ratio


def confidence(current: float, baseline: float, settings: LokiSettings) -> float:
    """0.5 at the edge of standing out, toward 0.9 at four times the required margin."""
    floor = max(baseline * settings.error_ratio, float(settings.min_error_lines), 1.0)
    return round(0.5 + 0.4 * min(max(current / floor - 1, 0.0) / 3, 1.0), 3)


class LokiClient:
    def __init__(self, base_url: str, http: httpx.AsyncClient) -> None:
        self.base_url = base_url.rstrip("/")
        self.http = http

    async def query_range(self, query: str, start: datetime, end: datetime, *,
                          step_s: float | None = None, limit: int | None = None) -> Any:
        params: dict[str, str] = {"query": query, "start": str(_ns(start)), "end": str(_ns(end))}
        if step_s is not None:
            params["step"] = f"{step_s:g}"
        if limit is not None:
            params.update(limit=str(limit), direction="backward")
        url = f"{self.base_url}/loki/api/v1/query_range"
        try:
            response = await self.http.get(url, params=params)
        except httpx.TimeoutException as exc:
            raise SourceUnreachable(f"Loki at {self.base_url} did not answer in time ({type(exc).__name__})") from None
        except httpx.TransportError as exc:
            raise SourceUnreachable(f"Loki at {self.base_url} unreachable: {type(exc).__name__}: {exc}") from None
        if response.status_code >= 500 or response.status_code == 429:
            raise SourceUnreachable(f"Loki answered HTTP {response.status_code} to {query!r}: {response.text[:300]}")
        if response.status_code >= 400:
            # Loki explains a bad query in a plain-text body.
            raise QueryRejected(f"Loki refused {query!r}: HTTP {response.status_code}: {response.text.strip()[:300]}")
        try:
            return response.json()
        except ValueError:
            raise QueryRejected(f"HTTP {response.status_code} from {url} is not a Loki API answer") from None

    async def samples(self, query: str, start: datetime, end: datetime, step_s: float) -> list[Series]:
        return parse_result(await self.query_range(query, start, end, step_s=step_s), query)

    async def lines(self, query: str, start: datetime, end: datetime, limit: int) -> list[tuple[datetime, str]]:
        return parse_streams(await self.query_range(query, start, end, limit=limit), query)


def _ns(moment: datetime) -> int:
    return int(moment.timestamp() * 1_000_000_000)


def build_queries(settings: LokiSettings, service: str, window: str) -> dict[str, str]:
    """The LogQL this source runs for `service`: volume, errors, baseline, lines.
    `window` (the analysis window's length, e.g. "20m") fills `{window}`."""
    values = {"label": settings.service_label, "service": escape_label_value(service),
              "window": window, "step": settings.step, "baseline_offset": settings.baseline_offset}
    error_query = render(settings.error_query, **values)
    values["error_query"] = error_query
    return {
        "volume": render(settings.volume_query, **values),
        "errors": render(settings.count_query, **values),
        "baseline": render(settings.baseline_query, **values),
        "lines": error_query,
    }


@dataclass
class _Looked:
    """What the source saw across services: findings, and the problems it names."""

    findings: list[Finding] = field(default_factory=list)
    no_data: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    answered: int = 0


class LokiSource(HttpSource):
    """Counts each examined service's error lines against a baseline and groups them
    into patterns, within the run's analysis window."""

    name = "loki"
    client_type = LokiClient
    settings: LokiSettings
    client: LokiClient | None

    async def investigate(self, incident: IncidentFacts, scope: Scope, calls: Calls) -> SourceReport:
        assert self.client is not None
        looked = _Looked()
        for service in scope.services:
            try:
                await self._service(service, service == scope.symptom, scope, calls, looked)
            except TemplateError as exc:
                return SourceReport("failed", looked.findings, [str(exc)])
            except QueryRejected as exc:
                # A refused query is refused for every service alike: stop asking.
                return SourceReport("failed", looked.findings, [str(exc)])
        return settle(looked.no_data, looked.failed, looked.findings, looked.answered)

    async def _service(self, service: str, symptom: bool, scope: Scope, calls: Calls, looked: _Looked) -> None:
        settings, client, window = self.settings, self.client, scope.window
        assert client is not None
        span = duration_text(window.length)
        queries = build_queries(settings, service, span)
        step = seconds(settings.step)
        start, end = window.start, window.end
        ask: dict[str, list[Series]] = {}
        for name in ("volume", "errors", "baseline"):
            calls.note(queries[name])
            try:
                ask[name] = await calls.call(f"loki {name}", partial(client.samples, queries[name], start, end, step))
            except QueryRejected as exc:
                raise QueryRejected(f"{name}: {exc}") from None
            if name == "volume" and not ask[name]:
                if symptom:  # a dependency without logs is simply not logged
                    looked.no_data.append(f"no log lines for {service} in the window {window.interval()}: "
                                          f"{queries['volume']}")
                return
        looked.answered += 1
        current, baseline = total(ask["errors"]), total(ask["baseline"])
        if not errors_stand_out(current, baseline, settings):
            return
        evidence: dict[str, Any] = {
            "query": queries["errors"], "baseline_query": queries["baseline"], "service": service,
            "window": window.interval(), "baseline_offset": settings.baseline_offset,
            "value": current, "baseline": baseline,
            "rate_per_s": round(current / max(window.length.total_seconds(), 1), 4),
            "link": loki_query_link(client.base_url, queries["errors"], start, end),
        }
        counts = per_step(ask["errors"], start, end, step)
        baseline_per_step = baseline / max(len(counts), 1)
        changed_at = rise_start(counts, baseline_per_step * settings.error_ratio)
        evidence["per_step"] = [[moment.isoformat(), value] for moment, value in counts[-60:]]
        looked.findings.append(Finding(
            "log_errors", f"{service}: {current:.0f} error lines in {span}, baseline {baseline:.0f} "
                          f"({settings.baseline_offset} earlier)",
            confidence(current, baseline, settings), evidence, changed_at, key=service, service=service))
        calls.note(queries["lines"])
        try:
            lines = await calls.call("loki lines", partial(client.lines, queries["lines"], start, end,
                                                           settings.pattern_limit))
        except QueryRejected as exc:
            raise QueryRejected(f"lines: {exc}") from None
        patterns = top_patterns([line for _, line in lines], settings.top_patterns)
        if patterns:
            top = patterns[0]
            looked.findings.append(Finding(
                "error_patterns", f'{service}: most frequent error ({top.count} of {len(lines)} lines): '
                                  f'"{top.template[:160]}"',
                0.45, {"query": queries["lines"], "service": service, "window": window.interval(),
                       "lines": len(lines), "limit": settings.pattern_limit,
                       "patterns": [vars(p) for p in patterns],
                       "link": loki_query_link(client.base_url, queries["lines"], start, end)},
                key=service, service=service, signal="log_errors"))
