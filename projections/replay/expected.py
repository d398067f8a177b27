"""What the read models must hold for a log: the digests a rebuilt schema is verified against.

What a column *means* is said once, by the read model's own pure fold (`incidents.evolve`,
`alerts.evolve`, `correlation.evolve`, `scorecard.evolve`): restating those rules here
would be the same rules written twice by the same hands, not a check. What is checked
here is what is truly independent of the code that wrote the schema:

- **The decider's state.** Status, severity, acknowledgement and the alerts firing of each
  incident come from `streams.decider.evolve` (the state commands are decided on), folded
  here beside the rebuild; a projection rule that drifted from the decider shows.
- **The write path.** The other incident columns and the rows of alerts, correlation runs
  and sources and the scorecard are digested as the rebuild folded them in memory
  (`digests(folded)`), then compared with what PostgreSQL holds (`projections.replay.verify`):
  a row lost, doubled, mistyped or half-written by COPY or upsert shows.
- **The log itself.** The timeline, notes and findings are copies of the events, digested
  here from the events with their own first-wins rules, as are the offsets; services come
  from the decider's state by `services.service_status` (the rule), not from the SQL that
  counts them.

The rows are reduced to per-table digests (`Digest`: row count and an order-independent
sum of row hashes) that `projections.replay.verify` computes in SQL over the rebuilt
schema. Digests of disjoint sets of rows add up, so partitions folded in separate
processes combine. Free-form JSON columns (event data, evidence, hypotheses, the
correlation summary, impact) and the timeline's sentence are not digested; the
rebuilt-versus-live comparison (`verify.compare_schemas`) covers every column.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol
from uuid import UUID

from contracts.common import Status
from projections.services import service_status, worst
from streams.decider import evolve as decider_evolve
from streams.incident import Incident

NULL = "\x1e"
SEP = "\x1f"
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MICROSECOND = timedelta(microseconds=1)
MISSING = "\x1d"  # a field no stored row can have
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

class Folded(Protocol):
    """The rows a rebuild folded in memory (`projections.replay.rebuild.Rebuild`)."""

    incidents: dict[UUID, dict[str, Any]]
    alerts: dict[tuple[UUID, str], dict[str, Any]]
    runs: dict[UUID, dict[str, Any]]
    sources: dict[tuple[UUID, str], dict[str, Any]]
    scorecard: dict[UUID, dict[str, Any]]


@dataclass
class Expected:
    """The expected read models of the events given to `add`, in log order."""

    topic: str
    incidents: dict[UUID, Incident] = field(default_factory=dict)
    offsets: dict[int, int] = field(default_factory=dict)
    services_seen: dict[str, datetime] = field(default_factory=dict)
    timeline: Digest = field(default_factory=Digest)
    notes: Digest = field(default_factory=Digest)
    findings: Digest = field(default_factory=Digest)
    _services: dict[UUID, str] = field(default_factory=dict)
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
        self._decide(event)
        d, kind = event.data, event.type
        if kind == "NoteAdded" and d.note_id not in self._note_ids:
            self._note_ids.add(d.note_id)
            self.notes.add((str(d.note_id), incident, d.text, d.author, micros(event.occurred_at)))
        elif kind == "FindingRecorded" and d.finding_id not in self._finding_ids:
            self._finding_ids.add(d.finding_id)
            self.findings.add((str(d.finding_id), incident, str(d.run_id), d.source, d.kind,
                               d.summary, millionths(d.confidence), micros(d.changed_at),
                               boolean(d.after_resolution), micros(event.recorded_at), text(d.service),
                               text(d.signal)))

    def _decide(self, event: Any) -> None:
        if event.type == "IncidentOpened":
            state = decider_evolve(None, event.data)
            assert state is not None
            self.incidents[event.incident_id] = state
            self._services[event.incident_id] = event.data.service
        elif event.incident_id not in self.incidents:
            return  # events of an incident the log never opened leave no row
        elif event.type in DECIDED:
            self.incidents[event.incident_id] = decider_evolve(self.incidents[event.incident_id], event.data)
        service, at = self._services[event.incident_id], event.occurred_at
        if service not in self.services_seen or self.services_seen[service] < at:
            self.services_seen[service] = at

    # --- digests ----------------------------------------------------------------------

    def digests(self, folded: Folded) -> dict[str, Digest]:
        """Per table, the digest of the rows expected: `folded`'s rows, with what the decider
        decides taken from its state (services excepted: they depend on every partition,
        see `service_tallies`)."""
        out = {"timeline": Digest(**vars(self.timeline)), "notes": Digest(**vars(self.notes)),
               "findings": Digest(**vars(self.findings))}
        incidents = out["incidents"] = Digest()
        for incident_id, state in self.incidents.items():
            row = folded.incidents.get(incident_id)
            if row is None:
                incidents.add((str(incident_id), MISSING))  # matches no stored row: the rebuild lost it
                continue
            incidents.add((
                str(incident_id), row["title"], row["service"], state.severity.value, state.status.value,
                str(row["version"]), text(row["description"]), flat_map(row["labels"]), micros(row["opened_at"]),
                micros(row["acknowledged_at"] if state.acknowledged else None), text(row["acknowledged_by"]),
                micros(row["mitigated_at"]), micros(row["resolved_at"]), micros(row["updated_at"]),
                millionths(row["time_to_acknowledge_s"]), millionths(row["time_to_mitigate_s"]),
                millionths(row["time_to_resolve_s"]), str(len(state.firing)),
                row["opened_by"]["kind"], row["opened_by"]["id"]))
        scorecard = out["scorecard"] = Digest()
        for incident_id, s in folded.scorecard.items():
            scorecard.add((str(incident_id), micros(s["opened_at"]), text(s["service"]), text(s["signal"]),
                           text(s["note"]), text(s["confirmed_by"]), micros(s["confirmed_at"]),
                           text(s["confirmed_version"]), text(s["run_id"]), text(s["rank"]), boolean(s["top1"]),
                           boolean(s["top3"]), text(s["first_named_run_id"]), micros(s["first_named_at"]),
                           millionths(s["time_to_first_hypothesis_s"])))
        alerts = out["alerts"] = Digest()
        for (incident_id, fingerprint), a in folded.alerts.items():
            alerts.add((str(incident_id), fingerprint, text(a["alertname"]), a["status"], flat_map(a["labels"]),
                        flat_map(a["annotations"]), micros(a["first_seen"]), micros(a["last_seen"]),
                        micros(a["resolved_at"])))
        runs = out["correlation_runs"] = Digest()
        for run_id, r in folded.runs.items():
            runs.add((str(run_id), str(r["incident_id"]), r["state"], text(r["outcome"]), text(r["trigger"]),
                      micros(r["started_at"]), micros(r["completed_at"])))
        sources = out["correlation_sources"] = Digest()
        for (run_id, name), s in folded.sources.items():
            sources.add((str(run_id), name, s["state"], str(s["attempts"]), text(s["duration_ms"]), text(s["error"]),
                         micros(s["started_at"]), micros(s["completed_at"])))
        return out

    def service_tallies(self) -> dict[str, ServiceTally]:
        """Per service touched: its unresolved incidents' severities and its latest event."""
        tallies = {name: ServiceTally(updated_at=at) for name, at in self.services_seen.items()}
        for incident_id, state in self.incidents.items():
            if state.status != Status.RESOLVED:
                tallies[self._services[incident_id]].open.append(state.severity.value)
        return tallies


@dataclass
class ServiceTally:
    """One service as far as some partitions know it; tallies of all partitions `merge`."""

    updated_at: datetime
    open: list[str] = field(default_factory=list)

    def merge(self, other: ServiceTally) -> ServiceTally:
        return ServiceTally(max(self.updated_at, other.updated_at), self.open + other.open)


def services_digest(tallies: dict[str, ServiceTally]) -> Digest:
    """The services rows, each service's status by `services.service_status`."""
    digest = Digest()
    for name, tally in tallies.items():
        digest.add((name, service_status(tally.open), str(len(tally.open)), text(worst(tally.open)),
                    micros(tally.updated_at)))
    return digest


def offsets_digest(projection: str, topic: str, offsets: dict[int, int]) -> Digest:
    digest = Digest()
    for partition, offset in offsets.items():
        digest.add((projection, topic, str(partition), str(offset)))
    return digest
