"""A postmortem of one incident, built from its events alone.

`build(events)` folds the incident's log with the read models' own pure functions
(`incidents.evolve`, `alerts.evolve`, `correlation.evolve`, `scorecard.evolve`,
`timeline.summarize`), so
the document says exactly what the dashboard said, and can be written from the log
when no read model is at hand (`warroom postmortem ID` reads Kafka). It also checks
the hash chain, so the document states whether the log it came from is intact.
`to_json` gives the data; `projections.history.postmortem_markdown` renders it for people.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID

from pydantic import BaseModel

from contracts.events import EventEnvelope
from projections import alerts, correlation, incidents, scorecard, timeline
from projections.logged import LoggedEvent, iso
from foundation.chain import verify

DURATIONS = (("time_to_acknowledge_s", "Time to acknowledge"), ("time_to_mitigate_s", "Time to mitigate"),
             ("time_to_resolve_s", "Time to resolve"))


@dataclass(frozen=True)
class Entry:
    """One line of the timeline: when, who, what."""

    at: datetime
    version: int
    type: str
    actor: str
    summary: str
    run_id: str | None = None  # the correlation run of a correlation event


@dataclass(frozen=True)
class Responder:
    actor: str
    actions: int
    first_at: datetime
    did: list[str]


@dataclass(frozen=True)
class Finding:
    finding_id: str
    source: str
    kind: str
    summary: str
    confidence: float
    changed_at: datetime | None
    evidence: dict[str, Any]
    after_resolution: bool
    service: str | None = None  # absent from findings of schema version 1
    signal: str | None = None


@dataclass(frozen=True)
class Run:
    run_id: str
    trigger: str | None
    state: str
    outcome: str | None
    started_at: datetime | None
    completed_at: datetime | None
    sources: list[dict[str, Any]]
    findings: list[Finding]
    hypotheses: list[dict[str, Any]]


@dataclass(frozen=True)
class LogCheck:
    events: int
    valid: bool
    first_bad_version: int | None
    last_hash: str | None


@dataclass(frozen=True)
class Postmortem:
    """Everything a postmortem document shows; the sections people must write are empty."""

    incident: dict[str, Any]
    opened_severity: str
    timeline: list[Entry]
    responders: list[Responder]
    severity_changes: list[Entry]
    status_changes: list[Entry]
    alerts: list[dict[str, Any]]
    runs: list[Run]
    hypotheses: list[dict[str, Any]]
    impact: list[dict[str, Any]]
    notes: list[dict[str, Any]]
    log: LogCheck
    root_cause: dict[str, Any] | None = None
    hypotheses_run_id: str | None = None  # the run `hypotheses` are of: the latest completed
    contributing_factors: list[str] = field(default_factory=list)
    action_items: list[dict[str, str]] = field(default_factory=list)
    paging: list[dict[str, Any]] = field(default_factory=list)  # the delivery ledger, in log order

    @property
    def durations(self) -> dict[str, float | None]:
        return {key: self.incident.get(key) for key, _ in DURATIONS}


def actor_name(actor: Any) -> str:
    """`kind:id`, or just the id for people."""
    kind = getattr(actor.kind, "value", actor.kind)
    return actor.id if kind == "user" else f"{kind}:{actor.id}"


def build(events: Sequence[EventEnvelope]) -> Postmortem:
    """The postmortem of the incident whose events (in log order) are `events`.

    Raises ValueError when there are none. Exact repeats of a version are folded once.
    """
    if not events:
        raise ValueError("an incident without events has no postmortem")
    check = verify(events)
    row: dict[str, Any] | None = None
    scored: dict[str, Any] | None = None
    entries: list[Entry] = []
    alert_rows: dict[str, dict[str, Any]] = {}
    runs: dict[UUID, dict[str, Any]] = {}
    sources: dict[tuple[UUID, str], dict[str, Any]] = {}
    findings: dict[UUID, list[Finding]] = {}
    impact: list[dict[str, Any]] = []
    notes: list[dict[str, Any]] = []
    paging: list[dict[str, Any]] = []
    seen: set[int] = set()
    opened_severity = ""
    for offset, event in enumerate(events):
        if event.version in seen:
            continue
        seen.add(event.version)
        item = LoggedEvent(event, 0, offset)
        row = incidents.evolve(row, event)
        if row is not None:
            scored = scorecard.evolve(scored, event, row["opened_at"])
        d: Any = event.data
        run_id = getattr(d, "run_id", None)
        entries.append(Entry(event.occurred_at, event.version, event.type, actor_name(event.actor),
                             timeline.summarize(event), None if run_id is None else str(run_id)))
        match event.type:
            case "IncidentOpened":
                opened_severity = str(d.severity)
            case "AlertAttached" | "AlertResolved":
                alert_rows[d.fingerprint] = alerts.evolve(alert_rows.get(d.fingerprint), item)
            case "CorrelationStarted" | "CorrelationSourceStarted" | "CorrelationSourceCompleted" \
                    | "CorrelationCompleted":
                correlation.evolve(runs, sources, item)
            case "FindingRecorded":
                findings.setdefault(d.run_id, []).append(Finding(
                    str(d.finding_id), d.source, d.kind, d.summary, d.confidence, d.changed_at,
                    dict(d.evidence), d.after_resolution, d.service, d.signal))
            case "ImpactAssessed":
                impact.append({**d.model_dump(mode="json"), "assessed_at": iso(event.occurred_at)})
            case "NoteAdded":
                notes.append({"at": event.occurred_at, "author": d.author, "text": d.text})
            case "NotificationSent" | "NotificationFailed" | "Escalated":
                paging.append({"at": event.occurred_at, "type": event.type, **d.model_dump(mode="json")})
    if row is None:
        raise ValueError(f"incident {events[0].incident_id} has no IncidentOpened in its log")
    ordered_runs = [_run(run, sources, findings.get(run_id, [])) for run_id, run in runs.items()]
    ordered_runs.sort(key=lambda r: (r.started_at is None, r.started_at or row["opened_at"]))
    latest = next((r for r in reversed(ordered_runs) if r.state == "completed"), None)
    return Postmortem(
        incident=row, opened_severity=opened_severity, timeline=entries, responders=_responders(entries),
        severity_changes=[e for e in entries if e.type == "SeverityChanged"],
        status_changes=[e for e in entries if e.type == "StatusChanged"],
        alerts=sorted(alert_rows.values(), key=lambda a: (a["first_seen"] is None, a["first_seen"] or 0)),
        runs=ordered_runs, hypotheses=list(latest.hypotheses) if latest else [], impact=impact, notes=notes,
        log=LogCheck(check.events, check.valid, check.first_bad_version,
                     events[-1].hash if check.valid else None),
        root_cause=_root_cause(scored, row), hypotheses_run_id=latest.run_id if latest else None,
        paging=paging,
    )


def _root_cause(scored: dict[str, Any] | None, row: dict[str, Any]) -> dict[str, Any] | None:
    """The confirmed cause as the incident shows it, and how correlation did against it
    (the scorecard's definitions: `projections.scorecard`)."""
    if scored is None or scored["service"] is None:
        return None
    return {**row["root_cause"], **{key: scored[key] for key in (
        "run_id", "rank", "top1", "top3", "first_named_run_id", "first_named_at", "time_to_first_hypothesis_s")}}


def _run(run: dict[str, Any], sources: dict[tuple[UUID, str], dict[str, Any]], found: list[Finding]) -> Run:
    names = list(run["sources"])
    extra = sorted(name for (run_id, name) in sources if run_id == run["run_id"] and name not in names)
    return Run(
        run_id=str(run["run_id"]), trigger=run["trigger"], state=run["state"], outcome=run["outcome"],
        started_at=run["started_at"], completed_at=run["completed_at"],
        sources=[{k: v for k, v in sources[(run["run_id"], name)].items() if k != "run_id"}
                 for name in names + extra if (run["run_id"], name) in sources],
        findings=sorted(found, key=lambda f: -f.confidence), hypotheses=list(run["hypotheses"] or []))


def _responders(entries: list[Entry]) -> list[Responder]:
    by_actor: dict[str, list[Entry]] = {}
    for entry in entries:
        by_actor.setdefault(entry.actor, []).append(entry)
    people = [Responder(actor, len(done), done[0].at, sorted({e.type for e in done}))
              for actor, done in by_actor.items()]
    return sorted(people, key=lambda r: r.first_at)


def to_json(postmortem: Postmortem) -> dict[str, Any]:
    """The postmortem as JSON-ready data (timestamps RFC 3339, durations in seconds)."""
    return _jsonable({
        "incident": incidents.to_summary(postmortem.incident),
        "opened_severity": postmortem.opened_severity,
        "durations": postmortem.durations,
        "timeline": [asdict(e) for e in postmortem.timeline],
        "responders": [asdict(r) for r in postmortem.responders],
        "severity_changes": [asdict(e) for e in postmortem.severity_changes],
        "status_changes": [asdict(e) for e in postmortem.status_changes],
        "alerts": postmortem.alerts,
        "correlation_runs": [asdict(r) for r in postmortem.runs],
        "hypotheses": postmortem.hypotheses,
        "impact": postmortem.impact,
        "notes": postmortem.notes,
        "root_cause": postmortem.root_cause,
        "hypotheses_run_id": postmortem.hypotheses_run_id,
        "log": asdict(postmortem.log),
        "contributing_factors": postmortem.contributing_factors,
        "action_items": postmortem.action_items,
        "paging": postmortem.paging,
    })


def _jsonable(value: Any) -> Any:
    if isinstance(value, BaseModel):  # typed hypotheses
        return value.model_dump(mode="json")
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, datetime):
        return iso(value)
    if isinstance(value, UUID):
        return str(value)
    return value
