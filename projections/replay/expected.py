"""What the read models must hold for a log, folded without the projection code.

A replay is verified against this: a second computation of the rows, written from
what each read model means (SPEC §6) rather than with the modules that build them.
Status, severity, acknowledgement and the alerts firing come from the decider's own
`evolve` (`streams.decider`), the state commands are decided on; everything else is
copied or derived from the events by the rules below. The rows are reduced to
per-table digests (`Digest`: row count and an order-independent sum of row hashes)
that `projections.replay.verify` computes in SQL over the rebuilt schema. Digests of
disjoint sets of rows add up, so partitions folded in separate processes combine.

Columns whose values are free-form JSON (event data, evidence, hypotheses, the
correlation summary, impact) and the timeline's sentence are not digested here; they
are compared with the live schema instead (`verify.compare_schemas`).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from contracts.common import Status
from projections.scorecard import suspects
from streams.decider import evolve as decider_evolve
from streams.incident import Incident

NULL = "\x1e"
SEP = "\x1f"
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MICROSECOND = timedelta(microseconds=1)
SEVERITY_ORDER = ("critical", "high", "medium", "low")
# The events that change what is checked of the decider's state (status, severity,
# acknowledged, alerts firing); folding the others through it would change nothing here.
DECIDED = frozenset({"IncidentAcknowledged", "StatusChanged", "SeverityChanged", "AlertAttached",
                     "AlertResolved"})


# --- canonical text of a value, as verify.SQL_CANONICAL writes it in SQL ---------------

def text(value: Any) -> str:
    return NULL if value is None else str(value)


def micros(value: datetime | None) -> str:
    return NULL if value is None else str((value - EPOCH) // MICROSECOND)


def millionths(value: float | None) -> str:
    return NULL if value is None else str(round(value * 1_000_000))


def boolean(value: bool | None) -> str:
    return NULL if value is None else ("true" if value else "false")


def flat_map(value: dict[str, str] | None) -> str:
    """A {str: str} object as PostgreSQL prints jsonb: keys by UTF-8 length, then bytes."""
    if value is None:
        return NULL
    keys = sorted(value, key=lambda k: (len(k.encode()), k.encode()))
    return "{" + ", ".join(f"{_string(k)}: {_string(value[k])}" for k in keys) + "}"


def _string(value: str) -> str:
    return json.dumps(value, ensure_ascii=False)


def row_hash(fields: tuple[str, ...]) -> int:
    """The hash of one row's canonical fields (the first 60 bits of an MD5)."""
    return int(hashlib.md5(SEP.join(fields).encode()).hexdigest()[:15], 16)


@dataclass
class Digest:
    """A multiset of rows: how many, and the sum of their hashes."""

    rows: int = 0
    total: int = 0

    def add(self, fields: tuple[str, ...]) -> None:
        self.rows += 1
        self.total += row_hash(fields)

    def __iadd__(self, other: Digest) -> Digest:
        self.rows += other.rows
        self.total += other.total
        return self


# --- the fold ---------------------------------------------------------------------------

@dataclass
class _Incident:
    row: dict[str, Any]
    state: Incident
    # The scorecard: each completed run (when, which, the services it named, best first),
    # and the confirmed cause with the latest run completed before it.
    completed: list[tuple[datetime, str, list[str]]] = field(default_factory=list)
    confirmed: tuple[Any, int, tuple[datetime, str, list[str]] | None] | None = None


@dataclass
class Expected:
    """The expected read models of the events given to `add`, in log order."""

    topic: str
    incidents: dict[UUID, _Incident] = field(default_factory=dict)
    alerts: dict[tuple[UUID, str], dict[str, Any]] = field(default_factory=dict)
    runs: dict[UUID, dict[str, Any]] = field(default_factory=dict)
    sources: dict[tuple[UUID, str], dict[str, Any]] = field(default_factory=dict)
    offsets: dict[int, int] = field(default_factory=dict)
    services_seen: dict[str, datetime] = field(default_factory=dict)
    timeline: Digest = field(default_factory=Digest)
    notes: Digest = field(default_factory=Digest)
    findings: Digest = field(default_factory=Digest)
    _versions: dict[UUID, tuple[str, set[int]]] = field(default_factory=dict)
    _note_ids: set[UUID] = field(default_factory=set)
    _finding_ids: set[UUID] = field(default_factory=set)

    def skip(self, partition: int, offset: int) -> None:
        """A record that is not an event: only its position counts."""
        self.offsets[partition] = offset + 1

    def add(self, partition: int, offset: int, event: Any) -> None:
        """Fold one event (an `EventEnvelope` or anything with its attributes)."""
        self.offsets[partition] = offset + 1
        seen = self._versions.get(event.incident_id)
        if seen is None:
            # The incident's id as text rides along: every row of it starts with it.
            seen = self._versions[event.incident_id] = (str(event.incident_id), set())
        incident, versions = seen
        if event.version in versions:
            return  # the first record of a version is the one that counts
        versions.add(event.version)
        self.timeline.add((
            incident, str(event.version), str(event.event_id), event.type,
            micros(event.occurred_at), micros(event.recorded_at), event.actor.kind.value, event.actor.id,
            str(partition), str(offset)))
        self._incident(event)
        d, kind = event.data, event.type
        if kind in ("AlertAttached", "AlertResolved"):
            self._alert(event)
        elif kind in ("CorrelationStarted", "CorrelationSourceStarted", "CorrelationSourceCompleted",
                      "CorrelationCompleted"):
            self._correlation(event)
        elif kind == "NoteAdded" and d.note_id not in self._note_ids:
            self._note_ids.add(d.note_id)
            self.notes.add((str(d.note_id), incident, d.text, d.author, micros(event.occurred_at)))
        elif kind == "FindingRecorded" and d.finding_id not in self._finding_ids:
            self._finding_ids.add(d.finding_id)
            self.findings.add((str(d.finding_id), incident, str(d.run_id), d.source, d.kind,
                               d.summary, millionths(d.confidence), micros(d.changed_at),
                               boolean(d.after_resolution), micros(event.recorded_at), text(d.service),
                               text(d.signal)))

    def _incident(self, event: Any) -> None:
        d, at = event.data, event.occurred_at
        if event.type == "IncidentOpened":
            state = decider_evolve(None, d)
            assert state is not None
            self.incidents[event.incident_id] = _Incident(state=state, row={
                "title": d.title, "service": d.service, "description": d.description,
                "labels": dict(d.labels), "opened_at": at, "opened_by": event.actor,
                "acknowledged_at": None, "acknowledged_by": None, "mitigated_at": None,
                "resolved_at": None})
        known = self.incidents.get(event.incident_id)
        if known is None:
            return  # events of an incident the log never opened leave no row
        if event.type in DECIDED:
            known.state = decider_evolve(known.state, d)
        row = known.row
        row["version"], row["updated_at"] = event.version, at
        if event.type == "IncidentAcknowledged" and row["acknowledged_at"] is None:
            row["acknowledged_at"], row["acknowledged_by"] = at, d.by
        elif event.type == "StatusChanged":
            if d.to == Status.MITIGATED and row["mitigated_at"] is None:
                row["mitigated_at"] = at
            if d.to == Status.RESOLVED:
                row["resolved_at"] = at
            elif d.from_ == Status.RESOLVED:
                row["resolved_at"] = None
        elif event.type == "CorrelationCompleted":
            known.completed.append((at, str(d.run_id), suspects(d.hypotheses)))
        elif event.type == "RootCauseConfirmed":
            known.confirmed = (event, event.version, known.completed[-1] if known.completed else None)
        service = row["service"]
        if service not in self.services_seen or self.services_seen[service] < at:
            self.services_seen[service] = at

    def _alert(self, event: Any) -> None:
        d, key = event.data, (event.incident_id, event.data.fingerprint)
        alert = self.alerts.setdefault(key, {
            "alertname": None, "status": "firing", "labels": {}, "annotations": {},
            "first_seen": None, "last_seen": None, "resolved_at": None})
        if event.type == "AlertAttached":
            seen = alert["first_seen"]
            alert.update(status="firing", resolved_at=None, labels=dict(d.labels),
                         annotations=dict(d.annotations), alertname=d.alertname or alert["alertname"],
                         first_seen=d.starts_at if seen is None else min(seen, d.starts_at),
                         last_seen=_later(alert["last_seen"], event.occurred_at))
        else:
            alert.update(status="resolved", resolved_at=d.ends_at, last_seen=_later(alert["last_seen"], d.ends_at))

    def _correlation(self, event: Any) -> None:
        d, at = event.data, event.occurred_at
        if event.type == "CorrelationStarted":
            if d.run_id in self.runs:
                return
            self.runs[d.run_id] = {"incident_id": event.incident_id, "state": "running", "outcome": None,
                                   "trigger": d.trigger, "started_at": at, "completed_at": None}
            for name in d.sources:
                self.sources.setdefault((d.run_id, name), _pending())
            return
        if event.type == "CorrelationCompleted":
            if d.run_id in self.runs:
                self.runs[d.run_id].update(state="completed", outcome=d.outcome, completed_at=at)
            return
        source = self.sources.setdefault((d.run_id, d.source), _pending())
        if event.type == "CorrelationSourceStarted":
            source.update(state="running", started_at=at)
        else:
            source.update(state=d.outcome, attempts=d.attempts, duration_ms=d.duration_ms, error=d.error,
                          completed_at=at)

    # --- digests ----------------------------------------------------------------------

    def digests(self) -> dict[str, Digest]:
        """Per table, the digest of the rows this fold expects (services excepted: they
        depend on every partition, see `service_tallies`)."""
        out = {"timeline": Digest(**vars(self.timeline)), "notes": Digest(**vars(self.notes)),
               "findings": Digest(**vars(self.findings))}
        incidents = out["incidents"] = Digest()
        for incident_id, known in self.incidents.items():
            row, state = known.row, known.state
            opened = row["opened_at"]
            incidents.add((
                str(incident_id), row["title"], row["service"], state.severity.value, state.status.value,
                str(row["version"]), text(row["description"]), flat_map(row["labels"]), micros(opened),
                micros(row["acknowledged_at"] if state.acknowledged else None), text(row["acknowledged_by"]),
                micros(row["mitigated_at"]), micros(row["resolved_at"]), micros(row["updated_at"]),
                millionths(_seconds(opened, row["acknowledged_at"])), millionths(_seconds(opened, row["mitigated_at"])),
                millionths(_seconds(opened, row["resolved_at"])), str(len(state.firing)),
                row["opened_by"].kind.value, row["opened_by"].id))
        out["scorecard"] = self._scorecard()
        alerts = out["alerts"] = Digest()
        for (incident_id, fingerprint), a in self.alerts.items():
            alerts.add((str(incident_id), fingerprint, text(a["alertname"]), a["status"], flat_map(a["labels"]),
                        flat_map(a["annotations"]), micros(a["first_seen"]), micros(a["last_seen"]),
                        micros(a["resolved_at"])))
        runs = out["correlation_runs"] = Digest()
        for run_id, r in self.runs.items():
            runs.add((str(run_id), str(r["incident_id"]), r["state"], text(r["outcome"]), text(r["trigger"]),
                      micros(r["started_at"]), micros(r["completed_at"])))
        sources = out["correlation_sources"] = Digest()
        for (run_id, name), s in self.sources.items():
            sources.add((str(run_id), name, s["state"], str(s["attempts"]), text(s["duration_ms"]), text(s["error"]),
                         micros(s["started_at"]), micros(s["completed_at"])))
        return out

    def _scorecard(self) -> Digest:
        """Incidents with a completed run or a confirmed cause: the cause, and how the run
        before the confirmation ranked it and when a run first named it."""
        digest = Digest()
        for incident_id, known in self.incidents.items():
            if not known.completed and known.confirmed is None:
                continue
            opened = known.row["opened_at"]
            if known.confirmed is None:
                digest.add((str(incident_id), micros(opened), *[NULL] * 13))
                continue
            event, version, counted = known.confirmed
            d = event.data
            rank = counted[2].index(d.service) + 1 if counted and d.service in counted[2] else None
            first = next(((at, run) for at, run, named in known.completed if d.service in named), None)
            digest.add((str(incident_id), micros(opened), d.service, text(d.signal), text(d.note), d.by,
                        micros(event.occurred_at), str(version), text(counted[1] if counted else None), text(rank),
                        boolean(rank == 1), boolean(rank is not None and rank <= 3),
                        text(first[1] if first else None), micros(first[0] if first else None),
                        millionths(_seconds(opened, first[0] if first else None))))
        return digest

    def service_tallies(self) -> dict[str, ServiceTally]:
        """Per service touched: its unresolved incidents' severities and its latest event."""
        tallies = {name: ServiceTally(updated_at=at) for name, at in self.services_seen.items()}
        for known in self.incidents.values():
            if known.state.status != Status.RESOLVED:
                tallies[known.row["service"]].open.append(known.state.severity.value)
        return tallies


@dataclass
class ServiceTally:
    """One service as far as some partitions know it; tallies of all partitions `merge`."""

    updated_at: datetime
    open: list[str] = field(default_factory=list)

    def merge(self, other: ServiceTally) -> ServiceTally:
        return ServiceTally(max(self.updated_at, other.updated_at), self.open + other.open)


def services_digest(tallies: dict[str, ServiceTally]) -> Digest:
    """The services rows: outage with an unresolved critical incident, degraded with any
    other unresolved one, else operational."""
    digest = Digest()
    for name, tally in tallies.items():
        status = "outage" if "critical" in tally.open else ("degraded" if tally.open else "operational")
        worst = min(tally.open, key=SEVERITY_ORDER.index) if tally.open else None
        digest.add((name, status, str(len(tally.open)), text(worst), micros(tally.updated_at)))
    return digest


def offsets_digest(projection: str, topic: str, offsets: dict[int, int]) -> Digest:
    digest = Digest()
    for partition, offset in offsets.items():
        digest.add((projection, topic, str(partition), str(offset)))
    return digest


def _pending() -> dict[str, Any]:
    return {"state": "pending", "attempts": 0, "duration_ms": None, "error": None, "started_at": None,
            "completed_at": None}


def _later(a: datetime | None, b: datetime) -> datetime:
    return b if a is None else max(a, b)


def _seconds(start: datetime | None, end: datetime | None) -> float | None:
    return None if start is None or end is None else (end - start).total_seconds()
