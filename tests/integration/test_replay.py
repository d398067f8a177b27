"""`warroom replay`, audit and postmortems against real Kafka and PostgreSQL.

The log: hundreds of incidents decided by the real decider (transitions, reopenings,
notes, severity changes, alerts, correlation runs), interleaved with the synthetic
log's busy lives, with some records written twice and some not events at all.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from uuid import UUID

import asyncpg
import pytest
from aiokafka import AIOKafkaProducer

from contracts.commands import (
    AcknowledgeIncident, AddNote, AssessImpact, AttachAlert, ChangeSeverity, ChangeStatus, CommandBase,
    CompleteCorrelation, CompleteCorrelationSource, ConfirmRootCause, CreateSilence, ExpireSilence, OpenIncident,
    RecordFinding, RecordNotification, RecordSilencedAlert, ResolveAlert, StartCorrelation, StartCorrelationSource,
)
from contracts.silences import Matcher
from contracts.common import Actor, Severity, Status
from contracts.events import EventEnvelope
from contracts.hypotheses import Hypothesis
from harness.waiting import wait_for_async
from projections.replay.log_reader import partition_for, read_incident
from projections.replay.run import ReplayError, drop_old_schemas, replay
from projections.runner import Projector
from projections.schema import migrate, quote_ident
from projections.replay.segment import Segment
from projections.replay.switch import ONE_REPLAY, old_schemas
from projections.synthetic import synthetic_log
from projections.replay.verify import REBUILT_TABLES, compare_schemas, verify
from streams.decider import Rejected
from streams.incident_log import execute
from foundation.settings import Settings, load_settings
from foundation.topics import ensure_topics

pytestmark = pytest.mark.timeout(600)

REPO = Path(__file__).resolve().parents[2]
KEYS = {"incidents": "id", "timeline": "incident_id, version", "notes": "note_id",
        "alerts": "incident_id, fingerprint", "correlation_runs": "run_id", "correlation_sources": "run_id, source",
        "findings": "finding_id", "notifications": "incident_id, version", "scorecard": "incident_id", "services": "name", "silences": "silence_id",
        "silenced_alerts": "silence_id, version", "projection_offsets": "projection, topic, partition"}
PEOPLE = [Actor(kind="user", id=name) for name in ("alice", "bob", "chloé")]
SUSPECTS = ["db", "payments", "checkout", "cache"]
START = datetime(2025, 6, 1, 9, 0, tzinfo=UTC)


def settings_for(kafka, postgres, name: str, partitions: int = 4) -> Settings:
    return load_settings(
        kafka={"bootstrap": kafka.bootstrap},
        postgres={"dsn": postgres.dsn, "schema_name": name},
        topics={"prefix": name, "partitions": partitions},
        projector={"group_id": f"{name}-projector", "batch_max": 400, "batch_wait_ms": 5},
    )


def unique_name() -> str:
    return f"rep_{uuid.uuid4().hex[:8]}"


# --- a log decided by the decider ------------------------------------------------------


class Scenario:
    """Incidents living random but legal lives, decided by `streams.incident_log.execute`."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.states: dict[UUID, object] = {}
        self.clock = START
        self.alerts: dict[UUID, list[str]] = {}
        self.runs: dict[UUID, tuple[UUID, list[str]]] = {}

    def _uuid(self) -> UUID:
        return UUID(int=self.rng.getrandbits(128), version=4)

    def _command(self, cls: type[CommandBase], incident: UUID, **fields) -> CommandBase:
        self.clock += timedelta(milliseconds=self.rng.randint(1, 2000))
        return cls(command_id=self._uuid(), incident_id=incident, actor=self.rng.choice(PEOPLE),
                   issued_at=self.clock, **fields)

    def open(self) -> list[EventEnvelope]:
        incident = self._uuid()
        service = self.rng.choice(["checkout", "payments", "search", "paiements-été"])
        labels = {"team": self.rng.choice(["core", "edge"]), "région": "eu-ouest"}
        return self._do(self._command(OpenIncident, incident, title=f"{service} degraded", service=service,
                                      severity=self.rng.choice(list(Severity)), labels=labels))

    def step(self, incident: UUID) -> list[EventEnvelope]:
        rng, command = self.rng, None
        match rng.randrange(11):
            case 0:
                command = self._command(AcknowledgeIncident, incident)
            case 1 | 2:
                command = self._command(ChangeStatus, incident, to=rng.choice(list(Status)),
                                        reason=rng.choice([None, "reopened: errors are back", "fixed"]))
            case 3:
                command = self._command(ChangeSeverity, incident, severity=rng.choice(list(Severity)))
            case 4:
                command = self._command(AddNote, incident, note_id=self._uuid(),
                                        text=rng.choice(["Rolled back", "Looking at the DB | pool", "ça repart"]))
            case 5:
                fingerprint = f"fp-{rng.randrange(4)}"
                self.alerts.setdefault(incident, []).append(fingerprint)
                command = self._command(AttachAlert, incident, fingerprint=fingerprint, alertname="HighErrorRate",
                                        labels={"service": "x", "a\"b": "c"}, starts_at=self.clock)
            case 6:
                fingerprint = rng.choice(self.alerts.get(incident) or ["fp-0"])
                command = self._command(ResolveAlert, incident, fingerprint=fingerprint, ends_at=self.clock)
            case 7:
                return self._correlate(incident)
            case 8:
                command = self._command(AssessImpact, incident, slo="availability", burn_rate=rng.random() * 20,
                                        error_budget_left=rng.random(), estimated_cost=rng.choice([None, 950.5]))
            case 9:
                command = self._command(ConfirmRootCause, incident, service=rng.choice(SUSPECTS),
                                        signal=rng.choice([None, "latency", "errors"]),
                                        note=rng.choice([None, "pool exhausted | see runbook"]))
            case 10:
                failed = rng.random() < 0.5
                command = self._command(RecordNotification, incident, notification_id=self._uuid(), receiver="oncall",
                                        kind=rng.choice(["webhook", "email"]), attempt=rng.randint(1, 3),
                                        outcome="failed" if failed else "sent", status=503 if failed else None,
                                        error="HTTP 503" if failed else None, will_retry=failed, level=0,
                                        trigger="opened", trigger_event_id=incident)
        return self._do(command)

    def _correlate(self, incident: UUID) -> list[EventEnvelope]:
        run, sources = self._uuid(), ["prometheus", "loki"]
        events = self._do(self._command(StartCorrelation, incident, run_id=run, sources=sources, trigger="manual"))
        for source in sources:
            events += self._do(self._command(StartCorrelationSource, incident, run_id=run, source=source))
        events += self._do(self._command(CompleteCorrelationSource, incident, run_id=run, source="prometheus",
                                         outcome="succeeded", attempts=1, duration_ms=420,
                                         queries=['sum(rate(http_requests_total{status=~"5.."}[5m]))']))
        events += self._do(self._command(RecordFinding, incident, run_id=run, finding_id=self._uuid(),
                                         source="prometheus", kind="errors", summary="errors up",
                                         confidence=round(self.rng.random(), 3), changed_at=self.clock,
                                         evidence={"query": "q", "window": "5m", "values": [0.1, 0.3]},
                                         service="payments", signal="errors"))
        if self.rng.random() < 0.7:
            events += self._do(self._command(CompleteCorrelationSource, incident, run_id=run, source="loki",
                                             outcome="timed_out", attempts=3, duration_ms=10_000, error="deadline"))
            # Hypotheses of both shapes: free-form ones name no service, typed ones do.
            named = self.rng.sample(SUSPECTS, self.rng.randint(0, 3))
            hypotheses = [{"rank": n, "service": service, "signal": "latency", "confidence": 0.9 - n / 10,
                           "path": [service, "checkout"], "evidence": []} for n, service in enumerate(named, 1)]
            events += self._do(self._command(CompleteCorrelation, incident, run_id=run, outcome="partial",
                                             hypotheses=[Hypothesis(**h) for h in hypotheses] or [
                                                 Hypothesis(rank=1, service="payments", signal="errors",
                                                            confidence=0.7, path=["payments"], summary="bad deploy")]))
        return events

    def _do(self, command: CommandBase) -> list[EventEnvelope]:
        try:
            decision = execute(command, self.states.get(command.incident_id), self.clock)
        except Rejected:
            return []
        self.states[command.incident_id] = decision.state
        return decision.events

    def silence(self) -> list[EventEnvelope]:
        """A silence's stream: created, swallowing a few alerts (one twice), perhaps expired early."""
        silence = self._uuid()
        events = self._do(self._command(
            CreateSilence, silence, matchers=[Matcher(label="service", op="=~", value="db|cache")],
            starts_at=self.clock, ends_at=self.clock + timedelta(hours=2), comment="migration | ça dure"))
        for n in range(self.rng.randint(0, 4)):
            fingerprint = f"fp-{self.rng.randrange(3)}"
            events += self._do(self._command(RecordSilencedAlert, silence, fingerprint=fingerprint,
                                             alertname="DiskFull", labels={"service": "db", "n": str(n)},
                                             starts_at=START))
        if self.rng.random() < 0.5:
            events += self._do(self._command(ExpireSilence, silence, reason=self.rng.choice([None, "done"])))
        return events

    def log(self, incidents: int, steps: int, silences: int = 0) -> list[EventEnvelope]:
        """`incidents` incidents, each taking up to `steps` commands, and `silences` silences, interleaved."""
        lives = [self.silence() for _ in range(silences)]
        for _ in range(incidents):
            events = self.open()
            incident = events[0].incident_id
            for _ in range(self.rng.randint(1, steps)):
                events += self.step(incident)
            lives.append(events)
        return interleave(lives, self.rng)


def interleave(lives: list[list[EventEnvelope]], rng: random.Random) -> list[EventEnvelope]:
    """One log of several incidents' lives, each life in order."""
    cursors = [0] * len(lives)
    live = [i for i, life in enumerate(lives) if life]
    out = []
    while live:
        i = rng.choice(live)
        out.append(lives[i][cursors[i]])
        cursors[i] += 1
        if cursors[i] == len(lives[i]):
            live.remove(i)
    return out


def mixed_log(seed: int = 3, incidents: int = 300) -> list[EventEnvelope]:
    rng = random.Random(seed)
    decided = Scenario(seed).log(incidents, steps=14, silences=max(2, incidents // 20))
    busy = list(synthetic_log(2500, seed=seed + 1000, concurrent=40))  # other ids than the scenario's
    return interleave([decided, busy], rng)


# --- Kafka and PostgreSQL ---------------------------------------------------------------


async def produce(settings: Settings, events: list[EventEnvelope], *, topic: str | None = None,
                  repeat_every: int = 0, poison_every: int = 0) -> int:
    """Publish keyed by incident; some records twice, some not events. Returns records written."""
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka.bootstrap, acks="all", linger_ms=5)
    await producer.start()
    topic = topic or settings.topics.name("events")
    written = 0
    try:
        futures = []
        for n, event in enumerate(events, 1):
            key, value = str(event.incident_id).encode(), event.model_dump_json(by_alias=True).encode()
            futures.append(await producer.send(topic, value, key=key))
            if repeat_every and n % repeat_every == 0:
                futures.append(await producer.send(topic, value, key=key))
            if poison_every and n % poison_every == 0:
                futures.append(await producer.send(topic, b'{"not": "an event"}', key=key))
        await asyncio.gather(*futures)
        written = len(futures)
    finally:
        await producer.stop()
    return written


async def caught_up(projector: Projector) -> bool:
    return await projector.caught_up()


async def snapshot(conn: asyncpg.Connection, schema: str) -> dict[str, list[tuple]]:
    return {table: [tuple(r) for r in await conn.fetch(f"SELECT * FROM {quote_ident(schema)}.{table} ORDER BY {key}")]
            for table, key in KEYS.items()}


@pytest.fixture
async def conn(postgres):
    connection = await asyncpg.connect(postgres.dsn)
    yield connection
    await connection.close()


async def projected(settings: Settings, events: list[EventEnvelope], **produce_options) -> Projector:
    await ensure_topics(settings)
    await produce(settings, events, **produce_options)
    projector = Projector(settings)
    await projector.start()
    await wait_for_async(lambda: caught_up(projector), timeout=120, message="the live projector caught up")
    return projector


# --- replay ------------------------------------------------------------------------------


async def test_the_rebuilt_schema_equals_the_live_one_table_by_table(kafka, postgres, conn) -> None:
    settings = settings_for(kafka, postgres, unique_name())
    live = settings.postgres.schema_name
    events = mixed_log()
    projector = await projected(settings, events, repeat_every=37, poison_every=501)
    try:
        before = await snapshot(conn, live)
        changes_before = await conn.fetch(f"SELECT change_id, incident_id, version FROM {live}.changes ORDER BY 1")
        assert len(before["incidents"]) > 300 and len(before["timeline"]) == len(events)
        assert len(before["notifications"]) > 0  # the delivery ledger is rebuilt too
        assert len(before["silences"]) > 0 and len(before["silenced_alerts"]) > 0  # and the silences
        # Confirmed causes that correlation had first, and ones it had not (columns service, top1).
        assert {r[11] for r in before["scorecard"] if r[3] is not None} == {True, False}

        outcome = await replay(settings, jobs=2)

        assert outcome.valid and outcome.switched, outcome.mismatches
        assert outcome.applied == len(events) and outcome.repeated > 0 and outcome.unreadable > 0
        assert await old_schemas(conn, live) == [outcome.old]
        assert await compare_schemas(conn, outcome.old, live) == []
        assert await snapshot(conn, live) == before
        # The change feed came along: same ids, and the old schema no longer has one.
        assert await conn.fetch(f"SELECT change_id, incident_id, version FROM {live}.changes ORDER BY 1") == \
            changes_before
        assert await conn.fetchval("SELECT to_regclass($1)", f"{outcome.old}.changes") is None
        # And a verification of the new live schema finds it equal to a rebuild.
        again = await replay(settings, verify_only=True, jobs=1)
        assert again.valid and again.live_differences == [] and not again.switched
        assert not await conn.fetchval("SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)",
                                       again.rebuilt)
    finally:
        await projector.stop()


async def test_the_projector_goes_on_across_the_switch_without_skipping_or_doubling(kafka, postgres, conn) -> None:
    settings = settings_for(kafka, postgres, unique_name())
    live = settings.postgres.schema_name
    scenario = Scenario(seed=21)
    # At first only two of the four partitions hold events: the others fill while the
    # replay runs, and must still be rebuilt.
    first = [e for e in scenario.log(150, steps=10) if partition_for(e.incident_id, 4) < 2]
    for incident in [i for i in scenario.states if partition_for(i, 4) >= 2]:
        del scenario.states[incident]
    projector = await projected(settings, first)
    produced = list(first)
    stop = asyncio.Event()

    async def keep_deciding() -> None:
        # New incidents and new steps of known ones, in small bursts, all through the replay.
        while not stop.is_set():
            burst = scenario.log(5, steps=6)
            burst += [e for incident in list(scenario.states)[:20] for e in scenario.step(incident)]
            await produce(settings, burst)
            produced.extend(burst)
            await asyncio.sleep(0.05)

    writer = asyncio.create_task(keep_deciding())
    try:
        outcome = await replay(settings, jobs=2)
        assert outcome.valid and outcome.switched, outcome.mismatches
        more = len(produced)
        await wait_for_async(lambda: len(produced) > more + 50, timeout=60, message="events after the switch")
    finally:
        stop.set()
        await writer
    try:
        await wait_for_async(lambda: caught_up(projector), timeout=120, message="the projector caught up")
        keys = {(e.incident_id, e.version) for e in produced}
        timeline = await conn.fetch(f"SELECT incident_id, version FROM {live}.timeline")
        assert {(r[0], r[1]) for r in timeline} == keys and len(timeline) == len(keys)
        changes = await conn.fetch(f"SELECT change_id, incident_id, version FROM {live}.changes ORDER BY change_id")
        assert [(r[1], r[2]) for r in changes if (r[1], r[2]) in keys] == [(r[1], r[2]) for r in changes]
        assert len({(r[1], r[2]) for r in changes}) == len(changes) == len(keys), "one change per event"
        ids = [r[0] for r in changes]
        assert ids == sorted(set(ids))
        check = await replay(settings, verify_only=True, jobs=2)
        assert check.valid and check.live_differences == [], (check.mismatches, check.live_differences)
    finally:
        await projector.stop()


async def test_verify_only_reports_a_live_schema_that_drifted_and_leaves_it_alone(kafka, postgres, conn) -> None:
    settings = settings_for(kafka, postgres, unique_name())
    live = settings.postgres.schema_name
    projector = await projected(settings, mixed_log(seed=8, incidents=60))
    await projector.stop()
    await conn.execute(f"UPDATE {live}.incidents SET severity = CASE severity WHEN 'low' THEN 'high' ELSE 'low' END WHERE id = (SELECT id FROM {live}.incidents ORDER BY id LIMIT 1)")
    await conn.execute(f"DELETE FROM {live}.notes WHERE note_id = (SELECT note_id FROM {live}.notes ORDER BY note_id LIMIT 1)")
    drifted = await snapshot(conn, live)

    outcome = await replay(settings, verify_only=True, jobs=2)

    assert outcome.valid and not outcome.switched
    assert sorted(m.table for m in outcome.live_differences) == ["incidents", "notes"]
    assert await snapshot(conn, live) == drifted
    assert await old_schemas(conn, live) == []


async def test_verification_finds_a_wrong_row_in_any_table(kafka, postgres, conn) -> None:
    settings = settings_for(kafka, postgres, unique_name(), partitions=2)
    await ensure_topics(settings)
    await produce(settings, mixed_log(seed=5, incidents=40))
    rebuilt = settings.postgres.schema_name
    await migrate(conn, rebuilt)
    segment = Segment(settings, rebuilt, [0, 1])
    await segment.start()
    try:
        ends = await _ends(settings)
        report = await segment.advance(ends)
    finally:
        await segment.close()
    from projections.replay.expected import offsets_digest, services_digest
    from projections.replay.rebuild import write_services

    await write_services(conn, rebuilt, report.touched)
    expected = dict(report.digests, services=services_digest(report.tallies),
                    projection_offsets=offsets_digest("read_models", settings.topics.name("events"), report.positions))
    assert await verify(conn, rebuilt, expected) == []
    s = quote_ident(rebuilt)
    wrongs = {
        "incidents": f"UPDATE {s}.incidents SET acknowledged_by = 'mallory' WHERE id = (SELECT id FROM {s}.incidents ORDER BY id LIMIT 1)",
        "timeline": f"UPDATE {s}.timeline SET kafka_offset = kafka_offset + 1 WHERE version = 2 "
                    f"AND incident_id = (SELECT incident_id FROM {s}.timeline ORDER BY incident_id LIMIT 1)",
        "notes": f"DELETE FROM {s}.notes WHERE note_id = (SELECT note_id FROM {s}.notes ORDER BY note_id LIMIT 1)",
        "alerts": f"UPDATE {s}.alerts SET labels = '{{}}' WHERE fingerprint = (SELECT fingerprint FROM {s}.alerts ORDER BY fingerprint LIMIT 1)",
        "correlation_runs": f"UPDATE {s}.correlation_runs SET outcome = 'failed' "
                            f"WHERE run_id = (SELECT run_id FROM {s}.correlation_runs WHERE outcome IS NOT NULL ORDER BY run_id LIMIT 1)",
        "correlation_sources": f"UPDATE {s}.correlation_sources SET attempts = attempts + 1 "
                               f"WHERE run_id = (SELECT run_id FROM {s}.correlation_sources ORDER BY run_id LIMIT 1)",
        "findings": f"UPDATE {s}.findings SET confidence = confidence / 2 "
                    f"WHERE finding_id = (SELECT finding_id FROM {s}.findings ORDER BY finding_id LIMIT 1)",
        "scorecard": f"UPDATE {s}.scorecard SET top3 = NOT top3 "
                     f"WHERE incident_id = (SELECT incident_id FROM {s}.scorecard WHERE service IS NOT NULL "
                     f"ORDER BY incident_id LIMIT 1)",
        "services": f"UPDATE {s}.services SET status = 'operational' WHERE status <> 'operational'",
        "projection_offsets": f"UPDATE {s}.projection_offsets SET next_offset = next_offset - 1 WHERE partition = 0",
    }
    for table, statement in wrongs.items():
        transaction = conn.transaction()
        await transaction.start()
        try:
            assert await conn.execute(statement) != "UPDATE 0", table
            assert [m.table for m in await verify(conn, rebuilt, expected)] == [table]
        finally:
            await transaction.rollback()


async def _ends(settings: Settings) -> dict[int, int]:
    from projections.replay.log_reader import events_consumer, log_end

    async def all_there() -> dict[int, int] | None:
        async with events_consumer(settings) as consumer:
            ends = await log_end(consumer, settings.topics.name("events"))
        return ends if sum(ends.values()) else None

    return await wait_for_async(all_there, timeout=30, message="the events topic's end offsets")


async def test_without_a_live_schema_a_replay_creates_it(kafka, postgres, conn) -> None:
    settings = settings_for(kafka, postgres, unique_name())
    await ensure_topics(settings)
    events = list(synthetic_log(900, seed=2))
    await produce(settings, events)
    await wait_for_async(lambda: _all_readable(settings, len(events)), timeout=30, message="the log readable")
    outcome = await replay(settings, jobs=2)
    assert outcome.valid and outcome.switched and outcome.old is None
    assert await conn.fetchval(f"SELECT count(*) FROM {settings.postgres.schema_name}.timeline") == len(events)


async def _all_readable(settings: Settings, count: int) -> bool:
    return sum((await _ends(settings)).values()) >= count


async def test_one_replay_at_a_time_and_old_schemas_are_kept_until_dropped(kafka, postgres, conn) -> None:
    settings = settings_for(kafka, postgres, unique_name())
    live = settings.postgres.schema_name
    projector = await projected(settings, list(synthetic_log(600, seed=9)))
    await projector.stop()
    holder = await asyncpg.connect(postgres.dsn)
    try:
        assert await holder.fetchval(ONE_REPLAY, live)
        with pytest.raises(ReplayError, match="another replay"):
            await replay(settings, jobs=1)
    finally:
        await holder.close()
    # A replay killed midway leaves its schema; the next one clears it up.
    await migrate(conn, f"{live}_r20200101000000")
    first = await replay(settings, jobs=1)
    assert not await conn.fetchval("SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)",
                                   f"{live}_r20200101000000")
    second = await replay(settings, jobs=1)
    assert first.switched and second.switched and first.old != second.old
    assert await old_schemas(conn, live) == sorted([first.old, second.old])
    assert sorted(await drop_old_schemas(settings)) == sorted([first.old, second.old])
    assert await old_schemas(conn, live) == []


def cli(settings: Settings, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WARROOM_")}
    env.update({"WARROOM_KAFKA__BOOTSTRAP": settings.kafka.bootstrap, "WARROOM_POSTGRES__DSN": settings.postgres.dsn,
                "WARROOM_POSTGRES__SCHEMA_NAME": settings.postgres.schema_name,
                "WARROOM_TOPICS__PREFIX": settings.topics.prefix, "PYTHONPATH": str(REPO)})
    return subprocess.run([sys.executable, "-m", "warroom", *args], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=300)


async def test_the_replay_command_shows_progress_and_reports(kafka, postgres, conn) -> None:
    settings = settings_for(kafka, postgres, unique_name())
    projector = await projected(settings, list(synthetic_log(3000, seed=12)))
    await projector.stop()
    done = await asyncio.to_thread(cli, settings, "replay", "--json", "--jobs", "2")
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["switched"] and summary["valid"] and summary["records"] == 3000
    assert summary["old_schema"].startswith(f"{settings.postgres.schema_name}_old")
    assert "replay [" in done.stderr and "3,000/3,000 events" in done.stderr
    checked = await asyncio.to_thread(cli, settings, "replay", "--verify-only")
    assert checked.returncode == 0, checked.stderr
    assert "equals the rebuild table by table" in checked.stdout


# --- audit and postmortem from Kafka ------------------------------------------------------


def edited(event: EventEnvelope) -> EventEnvelope:
    """`event` with one field of its data changed, its hash left as sealed."""
    raw = json.loads(event.model_dump_json(by_alias=True))
    for key in ("text", "reason", "by", "title", "summary", "fingerprint", "slo", "source", "trigger", "error"):
        if key in raw["data"]:
            raw["data"][key] = "edited afterwards"
            return EventEnvelope.model_validate(raw)
    raw["data"]["hypotheses"] = [{"summary": "edited afterwards"}]
    return EventEnvelope.model_validate(raw)


async def test_audit_finds_the_altered_event_in_a_tampered_copy_of_the_log(kafka, postgres) -> None:
    scenario = Scenario(seed=31)
    events = scenario.open()
    incident = events[0].incident_id
    while len(events) < 8:
        events += scenario.step(incident)
    original = settings_for(kafka, postgres, unique_name(), partitions=5)
    copy = settings_for(kafka, postgres, unique_name(), partitions=5)
    for settings in (original, copy):
        await ensure_topics(settings)
    others = Scenario(seed=32).log(30, steps=4)
    await produce(original, interleave([events, others], random.Random(1)))
    # The copy: the same records, but version 4's data altered after it was sealed.
    tampered = events[:3] + [edited(events[3])] + events[4:]
    await produce(copy, interleave([tampered, others], random.Random(1)))

    stored = await read_incident(original, incident)
    assert stored and {r.partition for r in stored} == {partition_for(incident, 5)}
    assert [EventEnvelope.model_validate_json(r.value) for r in stored] == events

    good = await asyncio.to_thread(cli, original, "audit", str(incident))
    assert good.returncode == 0, good.stderr
    assert good.stdout.strip().endswith(f"valid: {len(events)} events, hash chain intact")
    bad = await asyncio.to_thread(cli, copy, "audit", str(incident), "--verify")
    assert bad.returncode == 1, bad.stderr
    verdict = json.loads(bad.stdout)
    assert verdict == {"valid": False, "events": 3, "first_bad_version": 4,
                       "problem": "version 4 does not match its hash: it was altered after it was sealed"}
    unknown = await asyncio.to_thread(cli, original, "audit", str(uuid.uuid4()))
    assert unknown.returncode == 2


async def test_the_postmortem_command_writes_the_document_from_kafka(kafka, postgres, tmp_path) -> None:
    settings = settings_for(kafka, postgres, unique_name())
    await ensure_topics(settings)
    events = [e for e in synthetic_log(200, seed=4, concurrent=3)]
    incident = events[0].incident_id
    await produce(settings, events)
    target = tmp_path / "pm.json"
    done = await asyncio.to_thread(cli, settings, "postmortem", str(incident), "--format", "json", "-o", str(target))
    assert done.returncode == 0, done.stderr
    document = json.loads(target.read_text())
    mine = [e for e in events if e.incident_id == incident]
    assert document["incident"]["id"] == str(incident) and len(document["timeline"]) == len(mine)
    assert document["log"] == {"events": len(mine), "valid": True, "first_bad_version": None,
                               "last_hash": mine[-1].hash}
    markdown = await asyncio.to_thread(cli, settings, "postmortem", str(incident))
    assert markdown.returncode == 0 and markdown.stdout.startswith("# Postmortem: ")


def test_tables_compared_are_every_read_model() -> None:
    assert set(REBUILT_TABLES) == set(KEYS)
