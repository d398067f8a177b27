"""Enabling paging on an old log: a notifier that starts for the first time on a log whose
incidents opened hours ago pages none of them, and pages what happens now (an incident
opened now, an old one reopened before it started or while it runs). Real Kafka, a real HTTP receiver; the log is
written by the real decider's `execute`, at the times it says."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from harness.receiver import Receiver
from harness.waiting import wait_for_async

from contracts.commands import ChangeStatus, CommandBase, OpenIncident
from contracts.common import Actor
from foundation.settings import Settings
from foundation.topics import ensure_topics
from streams.incident_log import execute
from streams.notifier import Notifier

ALICE = Actor(kind="user", id="alice")


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    yield server
    server.close()


class Incident:
    """One incident's log, decided by the real decider at the moments given."""

    def __init__(self, title: str) -> None:
        self.id, self.title, self.state, self.events = uuid.uuid4(), title, None, []

    def do(self, command_type: type[CommandBase], at: datetime, **fields: object) -> Incident:
        command = command_type(command_id=uuid.uuid4(), incident_id=self.id, actor=ALICE, issued_at=at, **fields)
        decision = execute(command, self.state, at)
        self.state = decision.state
        self.events += decision.events
        return self

    def open(self, at: datetime) -> Incident:
        return self.do(OpenIncident, at, title=self.title, service="checkout", severity="high")


async def publish(settings: Settings, incidents: list[Incident]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka.bootstrap, acks="all")
    await producer.start()
    try:
        for incident in incidents:
            for event in incident.events:
                await producer.send_and_wait(settings.topics.name("events"), key=str(incident.id).encode(),
                                             value=event.model_dump_json(by_alias=True).encode())
    finally:
        await producer.stop()


async def recorded(settings: Settings) -> list[dict]:
    """Every command on the commands topic (what the notifier asked the decider to record)."""
    topic = TopicPartition(settings.topics.name("commands"), 0)
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka.bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        consumer.assign([topic])
        await consumer.seek_to_beginning(topic)
        end = (await consumer.end_offsets([topic]))[topic]
        commands: list[dict] = []
        while await consumer.position(topic) < end:
            for records in (await consumer.getmany(timeout_ms=500)).values():
                commands += [json.loads(r.value) for r in records]
        return commands
    finally:
        await consumer.stop()


async def test_a_first_notifier_on_an_old_log_pages_only_what_happens_now(kafka, receiver: Receiver) -> None:
    settings = Settings(
        kafka={"bootstrap": kafka.bootstrap},
        topics={"prefix": f"t-age-{uuid.uuid4().hex[:8]}", "partitions": 1},  # one partition: one catch-up
        notify={"receivers": {"hook": {"kind": "webhook", "url": f"{receiver.url}/hook"}},
                "routes": [{"receivers": ["hook"]}], "max_age_s": 3600})
    await ensure_topics(settings)
    now = datetime.now(UTC)
    long_ago = now - timedelta(hours=2)
    old = Incident("opened two hours ago").open(long_ago)
    reopened = (Incident("opened two hours ago, reopened now").open(long_ago)
                .do(ChangeStatus, long_ago + timedelta(minutes=5), to="resolved", reason="fixed")
                .do(ChangeStatus, now, to="investigating", reason="back"))
    fresh = Incident("opened now").open(now)
    await publish(settings, [old, reopened, fresh])

    stop = asyncio.Event()
    running = asyncio.create_task(Notifier(settings).run(stop))
    try:
        def to(incident: Incident) -> list:
            return [d for d in receiver.received() if d.body["incident"]["id"] == str(incident.id)]

        async def both_paged() -> bool:
            if running.done():
                running.result()
            return bool(to(fresh)) and bool(to(reopened))

        await wait_for_async(both_paged, 60, 0.1, "the incidents of now paged")
        # One partition, caught up before acting: the tick that paged these saw `old` too.
        assert to(old) == []
        assert [d.body["trigger"] for d in to(reopened)] == ["reopened"]
        assert [d.body["trigger"] for d in to(fresh)] == ["opened"]

        # Nothing is recorded for what was too old: only the two pages of now were asked for.
        async def two_records() -> list[dict] | None:
            commands = await recorded(settings)
            return commands if len(commands) >= 2 else None

        commands = await wait_for_async(two_records, 30, 0.2, "the notifier's records")
        assert sorted(c["incident_id"] for c in commands) == sorted([str(reopened.id), str(fresh.id)])
        assert all(c["type"] == "RecordNotification" for c in commands)

        # The old incident, settled (its page too old), still pages when something happens to it now.
        later = datetime.now(UTC)
        old.events = []
        old.do(ChangeStatus, later, to="resolved", reason="fixed").do(ChangeStatus, later, to="investigating",
                                                                        reason="back")
        await publish(settings, [old])
        await wait_for_async(lambda: to(old), 30, 0.1, "the old incident paged for its reopening")
        assert [d.body["trigger"] for d in to(old)] == ["reopened"]
    finally:
        stop.set()
        await asyncio.wait_for(running, 30)

