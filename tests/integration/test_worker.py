"""The decider worker on a real broker: commands in, chained events, outcomes and dead
letters out; rejections append nothing; redelivery is harmless; state survives restarts."""

from __future__ import annotations

import asyncio
import base64
import json
import signal
import uuid
from collections.abc import AsyncIterator, Iterator

import pytest
import pytest_asyncio
from aiokafka import AIOKafkaProducer
from harness.decider import Client, Topics, Worker, command, opening
from harness.letters import ORIGINAL_MAX, assert_holds, poison
from harness.waiting import WaitTimeout, wait_for_async

from contracts.commands import AcknowledgeIncident, AddNote, ChangeStatus, StartCorrelation
from foundation.chain import verify
from foundation.settings import Settings
from foundation.topics import ensure_topics

PARTITIONS = 3


@pytest.fixture(scope="module")
def settings(kafka, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    prefix = f"t-worker-{uuid.uuid4().hex[:8]}"
    settings = Settings(kafka={"bootstrap": kafka.bootstrap},
                        topics={"prefix": prefix, "partitions": PARTITIONS},
                        # These tests drive versions by hand; no automatic run on open.
                        correlation={"on_open": False},
                        data_dir=tmp_path_factory.mktemp("worker"))
    asyncio.run(ensure_topics(settings))
    return settings


@pytest.fixture(scope="module")
def worker(settings: Settings) -> Iterator[Worker]:
    worker = Worker(settings, settings.data_dir / "worker.log")
    worker.start()
    yield worker
    worker.stop()


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def topics(settings: Settings) -> AsyncIterator[Topics]:
    topics = Topics(settings)
    task = asyncio.create_task(topics.run())
    yield topics
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def client(settings: Settings, topics: Topics, worker: Worker) -> AsyncIterator[Client]:
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka.bootstrap)
    await producer.start()
    client = Client(producer, settings, topics)
    # Ready once it answers: a command on an unknown incident comes back not_found.
    probe = command(AcknowledgeIncident, uuid.uuid4())
    await client.send(probe)
    try:
        await topics.outcome(probe, timeout=120)
    except AssertionError as err:
        raise AssertionError(f"worker never answered:\n{worker.tail()}") from err
    yield client
    await producer.stop()


async def test_commands_become_chained_events_and_outcomes(client: Client, topics: Topics) -> None:
    incident = uuid.uuid4()
    opened = await client.ask(opening(incident))
    assert (opened.accepted, opened.events, opened.version, opened.status) == (
        True, 1, 1, "open")
    await client.ask(command(AcknowledgeIncident, incident))
    started = await client.ask(command(StartCorrelation, incident, run_id=uuid.uuid4(),
                                       sources=["prometheus"]))
    assert (started.events, started.version, started.status) == (2, 4, "investigating")
    # The run then goes on (every source completes `unavailable` here); its first four events:
    log = await wait_for_async(lambda: len(topics.log_of(incident)) >= 4 and
                               topics.log_of(incident)[:4], timeout=30, message="4 events")
    assert [e.type for e in log] == ["IncidentOpened", "IncidentAcknowledged",
                                     "CorrelationStarted", "StatusChanged"]
    assert [e.version for e in log] == [1, 2, 3, 4]
    assert verify(log).valid
    assert log[3].actor.kind == "system" and log[3].causation_id == log[2].causation_id


async def test_rejections_answer_with_their_code_and_append_nothing(
        client: Client, topics: Topics) -> None:
    incident = uuid.uuid4()
    await client.ask(opening(incident))
    await client.ask(command(ChangeStatus, incident, to="investigating", expected_version=1))

    backwards = await client.ask(command(ChangeStatus, incident, to="open"))
    stale = await client.ask(command(ChangeStatus, incident, to="mitigated", expected_version=1))
    reasonless = await client.ask(command(ChangeStatus, incident, to="mitigated",
                                          expected_version=2))
    unknown = await client.ask(command(AcknowledgeIncident, uuid.uuid4()))

    assert (backwards.accepted, backwards.code, backwards.status, backwards.version) == (
        False, "invalid_transition", "investigating", 2)
    assert (stale.code, stale.field, stale.version) == ("version_conflict", "expected_version", 2)
    assert reasonless.accepted and reasonless.version == 3  # investigating -> mitigated is free
    assert (unknown.code, unknown.version, unknown.status) == ("not_found", 0, None)
    assert [e.version for e in topics.log_of(incident)] == [1, 2, 3]


async def test_poison_goes_to_the_dead_letter_queue_and_processing_goes_on(
        client: Client, topics: Topics, settings: Settings) -> None:
    incident = uuid.uuid4()
    key = str(incident).encode()
    misaddressed = opening(uuid.uuid4())
    await client.send_raw(b"\xffnot json at all", key)
    await client.send_raw(json.dumps({"type": "OpenIncident", "title": "x"}).encode(), key)
    await client.send_raw(misaddressed.model_dump_json().encode(), key)
    good = await client.ask(opening(incident))
    assert good.accepted and good.version == 1

    letters = await wait_for_async(
        lambda: [d for d in topics.dead_letters if d["key"] == str(incident)] if len(
            [d for d in topics.dead_letters if d["key"] == str(incident)]) == 3 else None,
        timeout=30, message="three dead letters")
    reasons = [letter["reason"] for letter in letters]
    assert reasons[0].startswith("not valid JSON")
    assert reasons[1].startswith("not a valid command") and "command_id" in reasons[1]
    assert "is not its incident_id" in reasons[2]
    assert letters[0]["original_text"] is None
    assert base64.b64decode(letters[0]["original_base64"]) == b"\xffnot json at all"
    assert {letter["topic"] for letter in letters} == {settings.topics.name("commands")}
    assert all(isinstance(letter["offset"], int) for letter in letters)
    assert misaddressed.command_id not in topics.outcomes


async def test_no_record_is_too_large_to_stop_the_decider(client: Client, topics: Topics) -> None:
    """A record of any size is dead-lettered (truncated when it must be) and the commands
    after it are decided: neither a ~460 KB non-JSON record, whose letter would hold it twice,
    nor a valid command too large for its events to be appended, nor one as large as the
    broker takes."""
    incident = uuid.uuid4()
    key = str(incident).encode()
    big_but_valid = opening(incident).model_copy(update={"labels": {"blob": "x" * 1_000_000}})
    originals = [poison(460_000), big_but_valid.model_dump_json().encode(), poison(ORIGINAL_MAX, b"{")]
    for original in originals:
        await client.send_raw(original, key)
    for n in range(3):
        answered = await client.ask(opening(incident) if n == 0 else
                                    command(AddNote, incident, note_id=uuid.uuid4(), text=f"after poison {n}"))
        assert answered.accepted and answered.version == n + 1

    letters = await wait_for_async(
        lambda: (mine := [d for d in topics.dead_letters if d["key"] == str(incident)]) and len(mine) == 3 and mine,
        timeout=60, message="three dead letters")
    for letter, original in zip(letters, originals):
        assert_holds(letter, original)
    assert [letter["truncated"] for letter in letters] == [True, True, True]
    assert letters[0]["reason"].startswith("not valid JSON")
    assert letters[1]["reason"].startswith("too large") and letters[2]["reason"].startswith("too large")
    assert big_but_valid.command_id not in topics.outcomes
    assert [e.version for e in topics.log_of(incident)] == [1, 2, 3]


async def test_a_redelivered_command_appends_nothing(client: Client, topics: Topics) -> None:
    incident = uuid.uuid4()
    await client.ask(opening(incident))
    note = command(AddNote, incident, note_id=uuid.uuid4(), text="rolled back")
    first = await client.ask(note)
    assert (first.events, first.version) == (1, 2)
    del topics.outcomes[note.command_id]
    again = await client.ask(note)
    assert (again.accepted, again.events, again.version) == (True, 0, 2)
    assert len(topics.events[incident]) == 2


async def test_state_survives_a_restart_of_the_worker(
        client: Client, topics: Topics, worker: Worker) -> None:
    incident = uuid.uuid4()
    await client.ask(opening(incident))
    await client.ask(command(ChangeStatus, incident, to="investigating"))
    assert worker.stop() == 0, worker.tail()
    worker.start()
    resumed = await client.ask(command(ChangeStatus, incident, to="mitigated",
                                       expected_version=2))
    assert (resumed.accepted, resumed.version, resumed.status) == (True, 3, "mitigated"), \
        worker.tail()
    log = topics.log_of(incident)
    assert [e.version for e in log] == [1, 2, 3] and verify(log).valid


async def where_missing(topics: Topics, notes, incidents) -> str:
    """Where the missing commands sit in the commands topic, what the group committed, and
    the through-offsets the changelog holds for their incidents (diagnosis of a failure)."""
    from aiokafka import AIOKafkaConsumer, TopicPartition
    from aiokafka.admin import AIOKafkaAdminClient
    settings = topics.settings
    names = settings.topics
    consumer = AIOKafkaConsumer(names.name("commands"), f"{names.prefix}-streams-incidents-changelog",
                                bootstrap_servers=settings.kafka.bootstrap, auto_offset_reset="earliest",
                                enable_auto_commit=False)
    await consumer.start()
    at: dict[str, tuple[int, int]] = {}
    through: dict[str, list] = {}
    try:
        while True:
            batch = await consumer.getmany(timeout_ms=1000)
            if not batch:
                break
            for tp, records in batch.items():
                for r in records:
                    try:
                        body = json.loads(r.value) if r.value else {}
                    except ValueError:
                        continue
                    if tp.topic == names.name("commands") and isinstance(body, dict) and "command_id" in body:
                        at[body["command_id"]] = (r.partition, r.offset)
                    elif tp.topic.endswith("changelog") and isinstance(body, dict):
                        through.setdefault(r.key.decode(), []).append(
                            (r.offset, body.get("through_offset"), (body.get("state") or {}).get("version")))
    finally:
        await consumer.stop()
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka.bootstrap)
    await admin.start()
    try:
        committed = await admin.list_consumer_group_offsets(f"{names.prefix}-streams")
    finally:
        await admin.close()
    lines = [f"committed {sorted((tp.topic[-12:], tp.partition, o.offset) for tp, o in committed.items() if 'commands' in tp.topic)}"]
    for i in incidents:
        have = {e.causation_id for e in topics.log_of(i)}
        gone = [at.get(str(c.command_id)) for c in notes[i] if c.command_id not in have]
        if gone:
            lines.append(f"{i}: missing at {gone}; changelog (offset, through, version) {through.get(str(i), [])[-6:]}")
    return "; ".join(lines)


async def test_kill_9_under_load_loses_and_doubles_nothing(
        client: Client, topics: Topics, worker: Worker) -> None:
    incidents = [uuid.uuid4() for _ in range(20)]
    notes = {i: [command(AddNote, i, note_id=uuid.uuid4(), text=f"note {n}") for n in range(30)]
             for i in incidents}
    for incident in incidents:
        await client.send(opening(incident))
    for n in range(30):
        if n == 10:
            # Kill the worker while it is busy with this load, then start it again.
            await wait_for_async(lambda: any(c.command_id in topics.outcomes
                                             for i in incidents for c in notes[i][:10]),
                                 timeout=60, message="the worker deciding notes")
            worker.stop(signal.SIGKILL)
            worker.start()
        for incident in incidents:
            await client.send(notes[incident][n])
    # Commands decided just before the kill may never be answered; the last ones will be.
    await topics.outcome(notes[incidents[-1]][-1], timeout=120)
    def missing() -> str:
        # What each short incident lacks, and what the decider answered for it.
        lines = []
        for i in incidents:
            have = {e.causation_id for e in topics.log_of(i)}
            for c in notes[i]:
                if c.command_id not in have:
                    answer = topics.outcomes.get(c.command_id)
                    lines.append(f"{i} note {c.text}: {'no answer' if answer is None else answer.model_dump_json()}")
        return "; ".join(lines[:20])

    try:
        await wait_for_async(lambda: all(len(topics.log_of(i)) >= 31 for i in incidents),
                             timeout=60, message="every note in the log")
    except WaitTimeout as err:
        raise AssertionError(f"{err}; missing: {missing()}; {await where_missing(topics, notes, incidents)}") from None
    for incident in incidents:
        log = topics.log_of(incident)
        assert verify(topics.events[incident]).valid
        assert [e.version for e in log] == list(range(1, 32))
        noted = [e.causation_id for e in log if e.type == "NoteAdded"]
        assert noted == [c.command_id for c in notes[incident]]
