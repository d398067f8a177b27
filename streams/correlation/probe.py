"""What `warroom doctor` can say about the correlation sources: run every configured
query for one service and report, per source, whether it answered, which queries
returned nothing, and which label values Prometheus actually has."""

from __future__ import annotations

import uuid
from typing import Any

import httpx

from contracts.commands import CompleteCorrelationSource, RecordFinding
from streams.correlation.model import IncidentFacts
from streams.correlation.resilience import SYSTEM_CLOCK, Clock
from streams.correlation.run import build_sources, close_sources, correlate
from foundation.settings import Settings

PROBE_RUN = uuid.UUID("00000000-0000-4000-8000-00000000d0c7")


async def prometheus_label_values(url: str, label: str, service: str, timeout_s: float,
                                  limit: int = 20) -> dict[str, Any]:
    """Whether Prometheus has `service` as a value of `label`, and some values it has
    (at most `limit`), or the error."""
    try:
        async with httpx.AsyncClient(timeout=timeout_s) as http:
            response = await http.get(f"{url.rstrip('/')}/api/v1/label/{label}/values")
            body = response.json()
    except (httpx.HTTPError, ValueError) as exc:
        return {"label": label, "error": f"{type(exc).__name__}: {exc}"}
    if body.get("status") != "success":
        return {"label": label, "error": body.get("error", "unknown error")}
    values = sorted(body.get("data") or [])
    return {"label": label, "has_service": service in values, "count": len(values), "values": values[:limit]}


async def probe_sources(settings: Settings, service: str, clock: Clock = SYSTEM_CLOCK) -> list[dict[str, Any]]:
    """One entry per configured source: {source, outcome, error, queries, findings},
    from a real run of every configured query for `service` (nothing is sent anywhere).
    The Prometheus entry adds the values its service label really has, so a wrong
    label name or service name shows at a glance."""
    sources = build_sources(settings, clock)
    # Opened now: the run's window ends now, so the queries are asked about the present.
    incident = IncidentFacts(uuid.uuid5(PROBE_RUN, service), service, clock.now())
    report: dict[str, dict[str, Any]] = {}
    try:
        async for command in correlate(settings, incident, PROBE_RUN, sources, clock):
            if isinstance(command, CompleteCorrelationSource):
                report[command.source] = {"source": command.source, "outcome": command.outcome,
                                          "error": command.error, "attempts": command.attempts,
                                          "duration_ms": command.duration_ms, "queries": command.queries,
                                          "findings": []}
            elif isinstance(command, RecordFinding):
                report[command.source]["findings"].append(command.summary)
    finally:
        await close_sources(sources)
    prometheus = settings.correlation.prometheus
    if "prometheus" in report and prometheus.url and report["prometheus"]["outcome"] != "failed":
        report["prometheus"]["label_values"] = await prometheus_label_values(
            prometheus.url, prometheus.service_label, service, settings.correlation.timeout_s)
    return [report[name] for name in settings.correlation.sources if name in report]
