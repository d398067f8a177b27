"""Rebuilding every read model from the log into an empty schema, in bulk.

The projector applies a batch with one upsert per table because the rows it touches
may already exist. A rebuild starts from empty tables and sees every event of an
incident in order, so it keeps the folded rows (incidents, alerts, correlation runs
and sources, the scorecard) in memory, streams the append-only ones (timeline, notes, findings) with
COPY, and writes each folded row when `finish` is called: with COPY the first time,
with the projector's upsert afterwards (a replay catching up with the live schema). What a row *is* after an event
comes from the same pure functions the projector uses (`incidents.evolve`,
`alerts.evolve`, `correlation.evolve`, `scorecard.evolve`, `timeline.summarize`); only the way rows reach
PostgreSQL differs.

Exactly like the projector: the first record of an (incident_id, version) wins and
later repeats are skipped; the first `NoteAdded` / `FindingRecorded` of an id wins;
records that are not events only move the position (the live projector dead-lettered
them). Decoding is the caller's (`projections.replay.decoding`).

The change feed is not rebuilt here: change ids are delivery positions in commit
order, not a fold of the log, and `projections.replay.switch` carries the live feed over.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg
from aiokafka.structs import ConsumerRecord

from contracts.events import SILENCE_EVENT_TYPES
from projections import alerts, correlation, incidents, notifications, offsets, scorecard, services, silences, timeline
from projections.apply import PROJECTION
from contracts.events import EventEnvelope
from projections.replay.decoding import DecodedEvent
from projections.logged import LoggedEvent, to_json
from projections.rows import column_arrays
from projections.rows import qualified

TIMELINE_COLUMNS = ("incident_id", "version", "event_id", "type", "occurred_at", "recorded_at",
                    "actor", "summary", "data", "kafka_partition", "kafka_offset")
NOTE_COLUMNS = ("note_id", "incident_id", "text", "author", "added_at")
FINDING_COLUMNS = ("finding_id", "incident_id", "run_id", "source", "kind", "summary", "confidence",
                   "changed_at", "evidence", "after_resolution", "recorded_at", "service", "signal")
# Folded rows are written in slices, so one statement's arrays stay a few MB.
WRITE_SLICE = 10_000
FOLDED = ("incidents", "alerts", "runs", "sources", "scorecard")


class Rebuild:
    """The read models of one log, folded in memory; `add` records, `flush` and `finish` write."""

    def __init__(self, schema: str, topic: str) -> None:
        self.schema = schema
        self.topic = topic
        self.incidents: dict[UUID, incidents.Row] = {}
        self.alerts: dict[tuple[UUID, str], alerts.Row] = {}
        self.runs: dict[UUID, correlation.Row] = {}
        self.sources: dict[tuple[UUID, str], correlation.Row] = {}
        self.scorecard: dict[UUID, scorecard.Row] = {}
        self.positions: dict[tuple[str, int], int] = {}
        self.touched: dict[str, datetime] = {}
        self.applied = 0
        self.repeated = 0
        self.unreadable = 0
        self._versions: dict[UUID, list[Any]] = {}
        self._notes_seen: set[UUID] = set()
        self._findings_seen: set[UUID] = set()
        self._actor_json: dict[tuple[str, str], str] = {}
        self._timeline: list[tuple] = []
        self._notes: list[tuple] = []
        self._findings: list[tuple] = []
        self._notifications: list[tuple] = []
        self._silence_events: list[LoggedEvent] = []  # few: applied with the projector's own statements
        # Folded rows changed since they were last written, and rows written at least once
        # (the first write of a row is a COPY, a later one an upsert).
        self._dirty: dict[str, set] = {table: set() for table in FOLDED}
        self._written: dict[str, set] = {table: set() for table in FOLDED}

    # --- folding ------------------------------------------------------------------

    def skip(self, record: ConsumerRecord) -> None:
        """A record that is not an event: it only moves the position."""
        self.positions[(self.topic, record.partition)] = record.offset + 1
        self.unreadable += 1

    def add(self, record: ConsumerRecord, event: DecodedEvent | EventEnvelope) -> bool:
        """Fold the event `record` held; False when it repeated a version already folded."""
        self.positions[(self.topic, record.partition)] = record.offset + 1
        if not self._first_time(event.incident_id, event.version):
            self.repeated += 1
            return False
        self.applied += 1
        item = LoggedEvent(event, record.partition, record.offset, self.topic,  # type: ignore[arg-type]
                           data_json=event.data.model_dump_json(by_alias=True))
        self._fold(item)
        return True

    def _first_time(self, incident: UUID, version: int) -> bool:
        # [highest version v such that 1..v were all seen, versions seen above it or None]
        seen = self._versions.get(incident)
        if seen is None:
            seen = self._versions[incident] = [0, None]
        through, above = seen
        if version == through + 1:
            through += 1
            while above and through + 1 in above:
                through += 1
                above.discard(through)
            seen[0] = through
            return True
        if version <= through or (above is not None and version in above):
            return False
        if above is None:
            seen[1] = above = set()
        above.add(version)
        return True

    def _fold(self, item: LoggedEvent) -> None:
        e = item.event
        kind, d, incident = e.type, e.data, e.incident_id
        row = incidents.evolve(self.incidents.get(incident), e)
        if row is not None:
            self.incidents[incident] = row
            self._dirty["incidents"].add(incident)
            if row["service"] is not None:
                at, service = e.occurred_at, row["service"]
                if service not in self.touched or self.touched[service] < at:
                    self.touched[service] = at
            if kind in scorecard.SCORED_EVENTS:
                scored = scorecard.evolve(self.scorecard.get(incident), e, row["opened_at"])
                assert scored is not None
                self.scorecard[incident] = scored
                self._dirty["scorecard"].add(incident)
        self._timeline.append((
            incident, e.version, e.event_id, kind, e.occurred_at, e.recorded_at, self._actor(e.actor),
            timeline.summarize(e), item.data_json, item.partition, item.offset))
        if kind in alerts.ALERT_EVENTS:
            key = (incident, d.fingerprint)
            self.alerts[key] = alerts.evolve(self.alerts.get(key), item)
            self._dirty["alerts"].add(key)
        elif kind in correlation.CORRELATION_EVENTS:
            correlation.evolve(self.runs, self.sources, item)
            self._dirty["runs"].add(d.run_id)
            if kind == "CorrelationStarted":
                self._dirty["sources"].update([(d.run_id, name) for name in d.sources])
            elif kind != "CorrelationCompleted":
                self._dirty["sources"].add((d.run_id, d.source))
        elif kind == "NoteAdded":
            if d.note_id not in self._notes_seen:
                self._notes_seen.add(d.note_id)
                self._notes.append((d.note_id, incident, d.text, d.author, e.occurred_at))
        elif kind == "FindingRecorded":
            if d.finding_id not in self._findings_seen:
                self._findings_seen.add(d.finding_id)
                self._findings.append((d.finding_id, incident, d.run_id, d.source, d.kind, d.summary,
                                       d.confidence, d.changed_at, to_json(d.evidence),
                                       d.after_resolution, e.recorded_at, d.service, d.signal))

        elif kind in notifications.NOTIFICATION_EVENTS:
            self._notifications.append(notifications.row(item))
        elif kind in SILENCE_EVENT_TYPES:
            self._silence_events.append(item)

    def _actor(self, actor: Any) -> str:
        # A log has few actors and each acts many times: encode each one once.
        key = (actor.kind, actor.id)
        text = self._actor_json.get(key)
        if text is None:
            text = self._actor_json[key] = actor.model_dump_json()
        return text

    # --- writing ------------------------------------------------------------------

    @property
    def staged(self) -> int:
        """Timeline rows folded but not yet written."""
        return len(self._timeline)

    def take(self) -> tuple[list[tuple], ...]:
        """The staged timeline, note, finding and notification rows and silence events, handed
        over for `copy`."""
        staged = self._timeline, self._notes, self._findings, self._notifications, self._silence_events
        self._timeline, self._notes, self._findings, self._notifications = [], [], [], []
        self._silence_events = []
        return staged

    async def copy(self, conn: asyncpg.Connection, staged: tuple[list[tuple], ...]) -> None:
        """COPY rows taken with `take` into the schema's append-only tables."""
        rows_timeline, rows_notes, rows_findings, rows_notifications, silence_events = staged
        for table, columns, rows in (("timeline", TIMELINE_COLUMNS, rows_timeline),
                                     ("notes", NOTE_COLUMNS, rows_notes),
                                     ("findings", FINDING_COLUMNS, rows_findings),
                                     ("notifications", notifications.COLUMNS, rows_notifications)):
            if rows:
                await conn.copy_records_to_table(table, schema_name=self.schema, columns=columns, records=rows)
        # In log order, after the timeline of the same events: as the live projector applies them.
        await silences.apply_batch(conn, self.schema, silence_events)

    async def finish(self, conn: asyncpg.Connection) -> None:
        """Write everything not yet written (staged rows, folded rows changed since the
        last `finish`) and the offsets reached, in one transaction. Services are not
        written here: they depend on every partition (see `write_services`)."""
        async with conn.transaction():
            await self.copy(conn, self.take())
            for table, (rows, statement, columns, name) in self._folded().items():
                dirty, written = self._dirty[table], self._written[table]
                fresh = [rows[key] for key in dirty - written if key in rows]
                changed = [rows[key] for key in dirty & written if key in rows]
                if fresh:
                    await conn.copy_records_to_table(name, schema_name=self.schema, columns=[c for c, _ in columns],
                                                     records=_records(fresh, columns))
                await _write(conn, self.schema, statement, columns, changed)
                written |= dirty
                dirty.clear()
            await offsets.save(conn, self.schema, PROJECTION, self.positions)

    def _folded(self) -> dict[str, tuple[dict, str, incidents.Columns, str]]:
        return {
            "incidents": (self.incidents, incidents.UPSERT, incidents.COLUMNS, "incidents"),
            "alerts": (self.alerts, alerts.UPSERT, alerts.COLUMNS, "alerts"),
            "runs": (self.runs, correlation.UPSERT_RUNS, correlation.RUN_COLUMNS, "correlation_runs"),
            "sources": (self.sources, correlation.UPSERT_SOURCES, correlation.SOURCE_COLUMNS, "correlation_sources"),
            "scorecard": (self.scorecard, scorecard.UPSERT, scorecard.COLUMNS, "scorecard"),
        }


async def write_services(conn: asyncpg.Connection, schema: str, touched: dict[str, datetime]) -> None:
    """Recompute the services `touched` (name → latest event) from the rebuilt incidents,
    with the projector's own statement."""
    await services.apply_batch(conn, schema, touched)


def _records(rows: list[dict[str, Any]], columns: incidents.Columns) -> list[tuple]:
    jsonb = [kind == "jsonb" for _, kind in columns]
    names = [name for name, _ in columns]
    return [tuple(to_json(row[n]) if j and row[n] is not None else row[n] for n, j in zip(names, jsonb))
            for row in rows]


async def _write(conn: asyncpg.Connection, schema: str, statement: str, columns: incidents.Columns,
                 rows: Iterable[dict[str, Any]]) -> None:
    rows = list(rows)
    for start in range(0, len(rows), WRITE_SLICE):
        await conn.execute(qualified(schema, statement), *column_arrays(rows[start:start + WRITE_SLICE], columns))
