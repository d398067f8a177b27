"""kill -9 of the worker at every point of its start loses no incident and doubles nothing.

Each round queues commands (new incidents, and a note on every incident so far), starts
the worker and kills it the moment its log reaches one milestone of the start: before it
joins its group, while it recovers its table, just after it is ready, while it decides.
After the last round a worker that is left alone must know every incident that was ever
accepted (no `not_found`), and the log must hold each decided command exactly once, with
contiguous versions and intact chains.
"""

from __future__ import annotations

import asyncio
import signal
import uuid
from collections import Counter, defaultdict
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from aiokafka import AIOKafkaProducer
from harness.decider import Client, Topics, Worker, command, opening
from harness.waiting import wait_for_async

from contracts.commands import AddNote, CommandBase
from foundation.chain import verify
from foundation.settings import Settings
from foundation.topics import ensure_topics

# Points of a worker's start, as Faust logs them, in order.
MILESTONES = (
    "Waiting for tables to be registered",
    "Subscribed to topic",
    "Joined group",
    "Setting newly assigned partitions",
    "Highwater for active changelog partitions",
    "Recovery complete",
    "Worker ready",
)
OPENED_PER_ROUND = 3


def log_since(worker: Worker, offset: int) -> str:
    with worker.log_path.open("rb") as log:
        log.seek(offset)
        return log.read().decode(errors="replace")


@pytest.fixture
def settings(kafka, tmp_path) -> Settings:
    settings = Settings(kafka={"bootstrap": kafka.bootstrap},
                        topics={"prefix": f"t-early-{uuid.uuid4().hex[:8]}", "partitions": 3},
                        correlation={"on_open": False}, data_dir=tmp_path)
    asyncio.run(ensure_topics(settings))
    return settings


@pytest_asyncio.fixture
async def topics(settings: Settings) -> AsyncIterator[Topics]:
    topics = Topics(settings)
    task = asyncio.create_task(topics.run())
    yield topics
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


@pytest_asyncio.fixture
async def client(settings: Settings, topics: Topics) -> AsyncIterator[Client]:
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka.bootstrap)
    await producer.start()
    yield Client(producer, settings, topics)
    await producer.stop()


async def test_killing_the_worker_anywhere_in_its_start_loses_no_incident(
        settings: Settings, topics: Topics, client: Client) -> None:
    worker = Worker(settings, settings.data_dir / "worker.log")
    incidents: list[uuid.UUID] = []
    sent: list[CommandBase] = []
    points = [*MILESTONES, "deciding"]
    try:
        for point in points:
            fresh = [uuid.uuid4() for _ in range(OPENED_PER_ROUND)]
            burst = [opening(i) for i in fresh] + [
                command(AddNote, i, note_id=uuid.uuid4(), text=f"before kill at {point}") for i in incidents]
            for queued in burst:
                await client.send(queued)
            sent += burst
            incidents += fresh
            offset = worker.log_path.stat().st_size if worker.log_path.exists() else 0
            worker.start()
            if point == "deciding":
                await wait_for_async(lambda: any(c.command_id in topics.outcomes for c in burst),
                                     timeout=120, message="the worker deciding the burst")
            else:
                await wait_for_async(lambda: point in log_since(worker, offset), timeout=120,
                                     message=f"the worker's log reaching {point!r}")
            worker.stop(signal.SIGKILL)

        worker.start()
        # Left alone, the worker decides everything queued, and knows every incident.
        for incident in incidents:
            answer = await client.ask(command(AddNote, incident, note_id=uuid.uuid4(), text="after the sweep"))
            assert answer.accepted, (incident, answer, worker.tail())
        for queued in sent:
            await topics.outcome(queued, timeout=60)
    finally:
        worker.stop()

    assert not [c for c in sent if not topics.outcomes[c.command_id].accepted]
    decided = Counter(e.causation_id for i in incidents for e in topics.log_of(i)
                      if e.type in ("IncidentOpened", "NoteAdded"))
    for incident in incidents:
        log = topics.log_of(incident)
        by_version: dict[int, set[uuid.UUID]] = defaultdict(set)
        for event in topics.events[incident]:
            by_version[event.version].add(event.event_id)
        assert all(len(ids) == 1 for ids in by_version.values()), f"two events at one version of {incident}"
        assert [e.version for e in log] == list(range(1, len(log) + 1))
        assert verify(log).valid
        # Every note queued for it, and the one after the sweep, exactly once.
        notes = [e.data.text for e in log if e.type == "NoteAdded"]
        expected = [c.text for c in sent if c.incident_id == incident and isinstance(c, AddNote)]
        assert notes == [*expected, "after the sweep"]
    # A redelivered command is recognised, never decided twice.
    assert all(decided[c.command_id] == 1 for c in sent)
