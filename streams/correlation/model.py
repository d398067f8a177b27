"""What a correlation source is given and what it reports back.

A source investigates one incident and answers with a `SourceReport`; it never builds
commands. `run.py` turns reports into the commands the decider sees.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal, Protocol
from uuid import UUID

if TYPE_CHECKING:
    import httpx

    from streams.correlation.anomaly import Anomaly
    from streams.correlation.resilience import Calls, CircuitBreaker
    from streams.correlation.window import Window



@dataclass(frozen=True)
class IncidentFacts:
    """The little a run needs to know about the incident it investigates."""

    id: UUID
    service: str
    opened_at: datetime
    alert_started_at: datetime | None = None  # starts_at of the first alert attached, if any
    symptom_signal: str | None = None  # the signal the first alert names (correlation.symptom_signal_label)

    @property
    def anchor(self) -> datetime:
        """The moment a run analyses around: the first alert's start, else the opening."""
        return self.alert_started_at or self.opened_at


@dataclass(frozen=True)
class Scope:
    """Where and when a run looks: the analysis window, and the services it examines
    (the incident's own first, then its dependencies through the service graph)."""

    window: Window
    services: tuple[str, ...]

    @property
    def symptom(self) -> str:
        return self.services[0]


@dataclass(frozen=True)
class Finding:
    """One thing a source noticed about one signal of one service, with the evidence to
    check it by hand.

    `key` tells apart findings of the same kind within one source (one per service, pod,
    deployment...); with source and kind it makes the finding id deterministic within a
    run. `signal` defaults to the kind. `anomaly` carries the numbers ranking compares
    when the finding came from a series.
    """

    kind: str
    summary: str
    confidence: float
    evidence: dict[str, Any]
    changed_at: datetime | None = None
    key: str = ""
    service: str = ""
    signal: str = ""
    anomaly: Anomaly | None = None


@dataclass(frozen=True)
class SourceReport:
    """What a source found. `outcome` is one of succeeded | no_data | failed.

    `failed` here means the source answered but refused some query (a bad template);
    a source it could not reach raises `SourceUnreachable` instead. `problems` names
    each query that returned nothing or was refused, so the reason is never silent.
    """

    outcome: Literal["succeeded", "no_data", "failed"]
    findings: list[Finding] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def error(self) -> str | None:
        return "; ".join(self.problems) or None


class Source(Protocol):
    """A place to look for causes: Prometheus, Loki, Kubernetes.

    Built once per process by `build_sources`, so its circuit breaker outlives runs.
    """

    name: str
    breaker: CircuitBreaker

    def unavailable_reason(self) -> str | None:
        """Why this source cannot be asked at all (not configured), or None."""

    async def investigate(self, incident: IncidentFacts, scope: Scope, calls: Calls) -> SourceReport:
        """Query the source about `incident` for every service of `scope`, within its
        window, every call through `calls`."""

    async def aclose(self) -> None:
        """Release connections."""


class HttpSource:
    """What the sources asked over HTTP (Prometheus, Loki) share: a client only when a
    URL is configured, and the one connection pool to close. A subclass names itself
    (`name`, also its settings section) and its client type (`client_type`)."""

    name: str
    client_type: type

    def __init__(self, settings: Any, breaker: CircuitBreaker, http: httpx.AsyncClient | None = None) -> None:
        self.settings = settings
        self.breaker = breaker
        self._http = http
        self.client = self.client_type(settings.url, http) if settings.url and http else None

    def unavailable_reason(self) -> str | None:
        if self.client is None:
            return f"not configured: correlation.{self.name}.url is not set"
        return None

    async def aclose(self) -> None:
        if self._http is not None:
            await self._http.aclose()


def settle(problems_no_data: list[str], problems_failed: list[str], findings: list[Finding],
           answered: int) -> SourceReport:
    """The one rule for a source's outcome from its queries.

    A refused query makes the source `failed`; otherwise a query that returned no series
    makes it `no_data`; both name the query. Findings of the queries that did answer are
    kept either way: a partly misconfigured source still shows what it saw.
    """
    problems = problems_failed + problems_no_data
    if problems_failed:
        return SourceReport("failed", findings, problems)
    if problems_no_data or not answered:
        return SourceReport("no_data", findings, problems or ["no query answered"])
    return SourceReport("succeeded", findings, [])
