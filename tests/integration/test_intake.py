"""Alert intake on a real broker: producers publish alerts, the worker opens, attaches and
resolves; the same alerts again change nothing; poison goes to the DLQ and the next good
message is processed; the groups survive a restart."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import pytest_asyncio
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from harness.decider import Worker
from harness.letters import ORIGINAL_MAX, assert_holds, poison
from harness.waiting import wait_for_async

from contracts.alerts import Alert
from contracts.commands import ChangeStatus
from contracts.common import Actor
from contracts.events import EventEnvelope
from streams.alert_reading import fingerprint
from foundation.settings import Settings
from foundation.topics import ensure_topics

ROOT = Path(__file__).resolve().parents[2]
PARTITIONS = 3
DRAIN_TIMEOUT_S = 120


class Log:
    """Everything on the events and DLQ topics, collected in the background."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.events: list[EventEnvelope] = []
        self.dead_letters: list[dict] = []

    async def run(self) -> None:
        names = self.settings.topics
        consumer = AIOKafkaConsumer(
            names.name("events"), names.name("dlq"), bootstrap_servers=self.settings.kafka.bootstrap,
            auto_offset_reset="earliest", enable_auto_commit=False, metadata_max_age_ms=1000)
        await consumer.start()
        try:
            while True:
                for tp, records in (await consumer.getmany(timeout_ms=200)).items():
                    for record in records:
                        if tp.topic == names.name("events"):
                            self.events.append(EventEnvelope.model_validate_json(record.value))
                        else:
                            self.dead_letters.append(json.loads(record.value))
        finally:
            await consumer.stop()

    def of_type(self, kind: str, service: str | None = None) -> list[EventEnvelope]:
        """Events of `kind` as a reader keeps them (an exact version repeat dropped)."""
        kept: dict[tuple[uuid.UUID, int], EventEnvelope] = {}
        for event in self.events:
            kept.setdefault((event.incident_id, event.version), event)
        found = [e for e in kept.values() if e.type == kind]
        if service is not None:
            incidents = {e.incident_id for e in kept.values()
                         if e.type == "IncidentOpened" and e.data.service == service}
            found = [e for e in found if e.incident_id in incidents]
        return found

    def opened(self, service: str) -> list[EventEnvelope]:
        return self.of_type("IncidentOpened", service)

    def moved_to(self, status: str, service: str) -> list[EventEnvelope]:
        """StatusChanged events to `status` (correlation also moves incidents, to investigating)."""
        return [e for e in self.of_type("StatusChanged", service) if e.data.to == status]

    def intake_events(self) -> int:
        """Events the intake causes: correlation runs go on in the background meanwhile."""
        return sum(len(self.of_type(kind)) for kind in ("IncidentOpened", "AlertAttached", "AlertResolved"))


class Producer:
    def __init__(self, producer: AIOKafkaProducer, settings: Settings) -> None:
        self.producer = producer
        self.settings = settings

    async def alerts(self, *alerts: Alert, key_by: str = "service") -> None:
        """Publish as a producer would: keyed by service, as the README asks, or by
        fingerprint, as a producer unaware of that might (each then takes one more hop)."""
        topic = self.settings.topics.name("alerts")
        acks = [await self.producer.send(topic, a.model_dump_json().encode(),
                                         key=(a.labels["service"] if key_by == "service" else fingerprint(a)).encode())
                for a in alerts]
        await asyncio.gather(*acks)

    async def raw(self, kind: str, value: bytes, key: bytes | None = None) -> None:
        await self.producer.send_and_wait(self.settings.topics.name(kind), value, key=key)


def alert(service: str, name: str = "HighErrorRate", status: str = "firing", **labels: str) -> Alert:
    now = datetime.now(UTC)
    return Alert(status=status, labels={"alertname": name, "service": service, **labels},
                 annotations={"summary": f"{name} on {service}"}, starts_at=now - timedelta(minutes=1),
                 ends_at=now if status == "resolved" else None, source="integration-test")


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


async def drained(settings: Settings) -> bool:
    """True once the worker has committed everything on the alerts, notices, commands and
    events topics: every command those caused has its events on the log, and every group
    has heard of its incident's changes."""
    group = f"{settings.topics.prefix}-streams"
    topics = [settings.topics.name("alerts"), f"{group}-intake-notices", settings.topics.name("commands"),
              settings.topics.name("events")]
    # A consumer of the worker's group that never joins it: it only reads the commits.
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka.bootstrap, group_id=group,
                                enable_auto_commit=False)
    await consumer.start()
    try:
        partitions = [TopicPartition(t, p) for t in topics for p in range(PARTITIONS)]
        ends = await consumer.end_offsets(partitions)
        committed = {tp: await consumer.committed(tp) for tp in partitions}
    finally:
        await consumer.stop()
    behind = {tp: end for tp, end in ends.items() if end > 0 and (committed[tp] or 0) < end}
    return not behind


@pytest.fixture(scope="module")
def settings(kafka, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    prefix = f"t-intake-{uuid.uuid4().hex[:8]}"
    settings = Settings(kafka={"bootstrap": kafka.bootstrap}, topics={"prefix": prefix, "partitions": PARTITIONS},
                        # Intake is under test; an automatic correlation run would add status changes.
                        correlation={"on_open": False}, data_dir=tmp_path_factory.mktemp("intake"))
    asyncio.run(ensure_topics(settings))
    return settings


@pytest.fixture(scope="module")
def worker(settings: Settings) -> Iterator[Worker]:
    worker = Worker(settings, settings.data_dir / "worker.log")
    worker.start()
    yield worker
    worker.stop()


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def log(settings: Settings) -> AsyncIterator[Log]:
    collected = Log(settings)
    task = asyncio.create_task(collected.run())
    yield collected
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def producer(settings: Settings, log: Log, worker: Worker) -> AsyncIterator[Producer]:
    raw = AIOKafkaProducer(bootstrap_servers=settings.kafka.bootstrap, linger_ms=5)
    await raw.start()
    client = Producer(raw, settings)
    probe = unique("probe")
    await client.alerts(alert(probe))
    try:
        await wait_for_async(lambda: log.opened(probe), timeout=120, message="the worker taking in alerts")
    except AssertionError as err:
        raise AssertionError(f"worker never took in an alert:\n{worker.tail()}") from err
    yield client
    await raw.stop()


async def until_drained(settings: Settings, worker: Worker) -> None:
    try:
        await wait_for_async(lambda: drained(settings), timeout=DRAIN_TIMEOUT_S, interval=0.2,
                             message="the worker committing every alert, notice and command")
    except AssertionError as err:
        raise AssertionError(f"{err}\n{worker.tail()}") from None


async def test_a_thousand_alerts_across_fifty_services_open_exactly_fifty_incidents(
        producer: Producer, log: Log, settings: Settings, worker: Worker) -> None:
    tag = unique("bulk")
    services = [f"{tag}-{n}" for n in range(50)]
    alerts = [alert(services[n % 50], name=f"Alert{n // 50}", pod=f"pod-{n}") for n in range(1000)]
    await producer.alerts(*alerts)

    def attached() -> int:
        return sum(len(log.of_type("AlertAttached", s)) for s in services)

    await wait_for_async(lambda: attached() == 1000, timeout=120, message="1000 alerts attached")
    await until_drained(settings, worker)
    assert all(len(log.opened(s)) == 1 for s in services), {s: len(log.opened(s)) for s in services}
    assert attached() == 1000
    opened = log.opened(services[0])[0]
    assert (opened.data.title, opened.data.severity, opened.actor.kind, opened.actor.id) == (
        "Alert0: Alert0 on " + services[0], "medium", "producer", "integration-test")

    events_before = log.intake_events()
    await producer.alerts(*alerts)  # the very same alerts again
    await until_drained(settings, worker)
    assert log.intake_events() == events_before
    await producer.alerts(*alerts, key_by="fingerprint")  # and again, keyed otherwise
    await until_drained(settings, worker)
    assert all(len(log.opened(s)) == 1 for s in services)
    assert attached() == 1000
    assert log.intake_events() == events_before


async def test_poison_goes_to_the_dlq_and_the_next_good_message_is_processed(
        producer: Producer, log: Log, settings: Settings) -> None:
    names = settings.topics
    service = unique("after-poison")
    nul = alert(service, team="pay\x00ments").model_dump_json().encode()
    await producer.raw("alerts", b"{not json", key=b"k1")
    await producer.raw("alerts", b'{"hello": "world"}', key=b"k2")
    await producer.raw("alerts", nul, key=b"k3")
    await producer.raw("commands", json.dumps({"type": "LaunchRockets", "incident_id": str(uuid.uuid4())}).encode(),
                       key=b"k4")
    await producer.alerts(alert(service))

    await wait_for_async(lambda: log.opened(service), timeout=60, message="the good alert opening an incident")
    letters = await wait_for_async(
        lambda: (found := {d["key"]: d for d in log.dead_letters if d["key"] in {"k1", "k2", "k3", "k4"}})
        and len(found) == 4 and found, timeout=60, message="four dead letters")
    assert letters["k1"]["reason"].startswith("not valid JSON")
    assert letters["k1"]["original_text"] == "{not json" and letters["k1"]["topic"] == names.name("alerts")
    assert letters["k2"]["reason"].startswith("not a valid alert") and "status" in letters["k2"]["reason"]
    assert letters["k3"]["reason"] == "not a valid alert: labels.team: must not contain NUL characters"
    assert letters["k4"]["topic"] == names.name("commands") and "LaunchRockets" in letters["k4"]["original_text"]
    for letter in letters.values():
        assert isinstance(letter["partition"], int) and isinstance(letter["offset"], int)


async def test_no_record_is_too_large_to_stop_the_intake(producer: Producer, log: Log, settings: Settings) -> None:
    """Oversized poison on the alerts topic (a ~460 KB non-JSON record; a valid alert too large
    for the commands made of it; one as large as the broker takes) is dead-lettered, truncated
    where it must be, and the alert after it opens its incident."""
    service = unique("after-big-poison")
    huge = alert(service).model_copy(update={"annotations": {"description": "y" * 1_000_000}})
    originals = {b"big1": poison(460_000), b"big2": huge.model_dump_json().encode(),
                 b"big3": poison(ORIGINAL_MAX, b"[")}
    for key, original in originals.items():
        await producer.raw("alerts", original, key=key)
    await producer.alerts(alert(service))

    await wait_for_async(lambda: log.opened(service), timeout=60, message="the good alert opening an incident")
    letters = await wait_for_async(
        lambda: (found := {d["key"]: d for d in log.dead_letters if d["key"] in {"big1", "big2", "big3"}})
        and len(found) == 3 and found, timeout=60, message="three dead letters")
    for key, original in originals.items():
        assert_holds(letters[key.decode()], original)
        assert letters[key.decode()]["topic"] == settings.topics.name("alerts")
    assert letters["big1"]["reason"].startswith("not valid JSON")
    assert letters["big2"]["reason"].startswith("too large") and letters["big3"]["reason"].startswith("too large")
    assert len(log.opened(service)) == 1


async def test_resolving_every_alert_mitigates_and_a_resolved_incident_makes_way_for_a_new_one(
        producer: Producer, log: Log, settings: Settings) -> None:
    service = unique("lifecycle")
    # Keyed by fingerprint: every alert takes the hop through the notices topic.
    await producer.alerts(alert(service, "A"), alert(service, "B"), key_by="fingerprint")
    await wait_for_async(lambda: len(log.of_type("AlertAttached", service)) == 2, timeout=60,
                         message="two alerts attached")
    (opened,) = log.opened(service)
    await producer.alerts(alert(service, "A", status="resolved"), key_by="fingerprint")
    await producer.alerts(alert(service, "B", status="resolved"), key_by="fingerprint")
    moved = await wait_for_async(lambda: log.moved_to("mitigated", service), timeout=60,
                                 message="the incident mitigated")
    assert [e.data.firing_left for e in log.of_type("AlertResolved", service)] == [1, 0]
    assert (moved[0].data.to, moved[0].data.reason, moved[0].actor.kind) == ("mitigated", "all alerts resolved", "system")

    resolve = ChangeStatus(command_id=uuid.uuid4(), incident_id=opened.incident_id,
                           actor=Actor(kind="user", id="alice"), issued_at=datetime.now(UTC), to="resolved")
    await producer.raw("commands", resolve.model_dump_json().encode(), key=str(opened.incident_id).encode())
    await wait_for_async(lambda: log.moved_to("resolved", service), timeout=60, message="the incident resolved")
    # The group hears of the resolution through the log; until then an alert would be refused
    # and routed again. Either way the next firing alert ends up in a new incident.
    await producer.alerts(alert(service, "A"))
    both = await wait_for_async(lambda: len(log.opened(service)) == 2 and log.opened(service), timeout=60,
                                message="a second incident")
    second = next(e for e in both if e.incident_id != opened.incident_id)
    await wait_for_async(
        lambda: any(e.incident_id == second.incident_id for e in log.of_type("AlertAttached", service)),
        timeout=60, message="the alert attached to the new incident")


async def test_an_incident_opened_by_hand_takes_the_alerts_of_its_service(
        producer: Producer, log: Log, settings: Settings) -> None:
    from contracts.commands import OpenIncident

    service = unique("by-hand")
    incident = uuid.uuid4()
    opening = OpenIncident(command_id=uuid.uuid4(), incident_id=incident, actor=Actor(kind="user", id="alice"),
                           issued_at=datetime.now(UTC), title="checkout slow", service=service, severity="high")
    await producer.raw("commands", opening.model_dump_json().encode(), key=str(incident).encode())
    await wait_for_async(lambda: log.opened(service), timeout=60, message="the incident opened")
    await until_drained_notices(settings)
    await producer.alerts(alert(service))
    attached = await wait_for_async(lambda: log.of_type("AlertAttached", service), timeout=60,
                                    message="the alert attached")
    assert attached[0].incident_id == incident and len(log.opened(service)) == 1


async def until_drained_notices(settings: Settings) -> None:
    # The group adopts the incident once its notice is processed: wait for everything committed.
    await wait_for_async(lambda: drained(settings), timeout=DRAIN_TIMEOUT_S, interval=0.2,
                         message="the worker committing every notice")


async def test_groups_survive_a_restart(producer: Producer, log: Log, settings: Settings, worker: Worker) -> None:
    service = unique("restart")
    await producer.alerts(alert(service, "A"))
    await wait_for_async(lambda: log.of_type("AlertAttached", service), timeout=60, message="attached")
    await until_drained(settings, worker)
    worker.stop(signal.SIGKILL)
    worker.start()
    await producer.alerts(alert(service, "A"), alert(service, "B"))
    await wait_for_async(lambda: len(log.of_type("AlertAttached", service)) == 2, timeout=120,
                         message=f"the second alert attached after a restart\n{worker.tail()}")
    await until_drained(settings, worker)
    assert len(log.opened(service)) == 1
    assert len({e.incident_id for e in log.of_type("AlertAttached", service)}) == 1


def warroom_cli(settings: Settings, *argv: str) -> dict:
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("WARROOM_")},
           "WARROOM_TOPICS__PREFIX": settings.topics.prefix, "WARROOM_KAFKA__BOOTSTRAP": "127.0.0.1:1"}
    done = subprocess.run([sys.executable, "-m", "warroom", *argv], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


async def test_warroom_alert_send_publishes_as_a_producer_would(
        producer: Producer, log: Log, settings: Settings, tmp_path: Path) -> None:
    service = unique("cli")
    # The broker comes from the stack.json of a `warroom up` data directory.
    (tmp_path / "stack.json").write_text(json.dumps({"kafka": settings.kafka.bootstrap, "postgres": settings.postgres.dsn}))
    sent = await asyncio.to_thread(
        warroom_cli, settings, "alert", "send", "--service", service, "--name", "DiskFull", "--severity", "page",
        "--label", "team=storage", "--annotation", "summary=disk 95% full", "--data-dir", str(tmp_path))
    assert (sent["topic"], sent["key"], sent["status"]) == (settings.topics.name("alerts"), service, "firing")
    opened = (await wait_for_async(lambda: log.opened(service), timeout=60, message="the incident opened"))[0]
    assert (opened.data.title, opened.data.severity, opened.data.labels["team"]) == (
        "DiskFull: disk 95% full", "critical", "storage")
    assert opened.actor.id == "warroom-cli"

    await asyncio.to_thread(
        warroom_cli, settings, "alert", "send", "--service", service, "--name", "DiskFull", "--severity", "page",
        "--label", "team=storage", "--resolve", "--data-dir", str(tmp_path))
    await wait_for_async(lambda: log.moved_to("mitigated", service), timeout=60, message="the incident mitigated")
    assert [e.data.fingerprint for e in log.of_type("AlertResolved", service)] == [sent["fingerprint"]]
