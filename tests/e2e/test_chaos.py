"""Chaos on Apache Kafka: HTTP load and a live SSE client while the worker, the projector,
the gateway and the notifier are killed with SIGKILL several times and the broker restarts
once.

Afterwards, read from the log itself: every command answered 2xx is on it exactly once,
nothing is on it twice, versions are contiguous and hash chains intact; the read model
shows exactly the log; and the SSE client, resuming after each lost connection with
Last-Event-ID, saw every change once and in order. Every incident pages a webhook (a real
HTTP server here, slow to answer so that each kill of the notifier lands while a page is
in flight): every incident was delivered, every repeat of a page carries its one key, and
every delivery is on the log and in the ledger once.

The test plays the process supervisor (`warroom up`, systemd or Kubernetes would): a
process that exits on its own is started again, and counted.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from aiokafka import AIOKafkaConsumer
from harness.receiver import Receiver
from harness.servers import jar_cache_dir, start_or_give_up
from harness.waiting import wait_for_async
from sse_client import open_stream
from stack import Stack, start_stack

from contracts.events import EventEnvelope
from projections.replay.log_reader import log_end, read_ranges
from foundation.chain import verify
from testing import ensure_kafka_jars, start_apache_kafka
from warroom.servers import KafkaServer

WRITERS = 4
NOTES_PER_INCIDENT = 6
PROGRESS_BETWEEN_FAULTS = 8  # 2xx answers the load must get between two faults
FAULTS = ("worker", "notifier", "projector", "gateway", "notifier", "worker", "broker", "projector", "notifier",
          "gateway", "worker")
FAULT_TIMEOUT_S = 120
RETRY_S = 0.2  # how soon a client tries again after a refused connection
HOOK_DELAY_S = 1.0  # the webhook answers this late, so a page is often sent but not yet recorded


@pytest.fixture
def apache(tmp_path) -> Iterator[KafkaServer]:
    """An Apache Kafka of this test's own, since it restarts it."""
    server = start_or_give_up("Apache Kafka", lambda: start_apache_kafka(
        tmp_path / "kafka", jars_dir=ensure_kafka_jars(jar_cache_dir())))
    yield server
    server.stop()


@pytest.fixture
def hook() -> Iterator[Receiver]:
    receiver = Receiver(delays={"/hook": HOOK_DELAY_S})
    yield receiver
    receiver.close()


def paging_config(path: Path, hook: Receiver) -> Path:
    """One webhook receiver and a route paging every incident once (fast retries)."""
    path.write_text(f"""
[notify]
backoff_s = 0.2
max_backoff_s = 1
[notify.receivers.hook]
kind = "webhook"
url = "{hook.url}/hook"
[[notify.routes]]
receivers = ["hook"]
""")
    return path


@dataclass
class Ledger:
    """What the clients were told."""

    opened: dict[str, uuid.UUID] = field(default_factory=dict)  # idempotency key -> incident
    confirmed: list[tuple[uuid.UUID, str]] = field(default_factory=list)  # notes answered 201
    unknown: list[tuple[uuid.UUID, str]] = field(default_factory=list)  # 202, 503 or no answer
    answers: int = 0
    restarts: dict[str, int] = field(default_factory=lambda: defaultdict(int))


async def open_incident(client: httpx.AsyncClient, key: str, service: str, stop: asyncio.Event) -> uuid.UUID | None:
    """Open with an idempotency key, asking again (same key) until a 201 says which."""
    while not stop.is_set():
        try:
            answer = await client.post("/v1/incidents", headers={"Idempotency-Key": key},
                                       json={"title": f"chaos {key}", "service": service, "severity": "high"})
        except httpx.HTTPError:
            await asyncio.sleep(RETRY_S)
            continue
        if answer.status_code == 201:
            return uuid.UUID(answer.json()["id"])
        assert answer.status_code in (202, 503), answer.text
        await asyncio.sleep(RETRY_S)
    return None


async def writer(n: int, stack: Stack, service: str, ledger: Ledger, stop: asyncio.Event) -> None:
    async with stack.client("responder", sub=f"writer-{n}", timeout=20) as client:
        round_ = 0
        while not stop.is_set():
            key = f"chaos-{service}-{n}-{round_}"
            round_ += 1
            incident = await open_incident(client, key, service, stop)
            if incident is None:
                return
            ledger.opened[key] = incident
            ledger.answers += 1
            for note in range(NOTES_PER_INCIDENT):
                if stop.is_set():
                    return
                text = f"{key} note {note}"
                try:
                    answer = await client.post(f"/v1/incidents/{incident}/notes", json={"text": text})
                except httpx.HTTPError:
                    ledger.unknown.append((incident, text))
                    await asyncio.sleep(RETRY_S)
                    continue
                if answer.status_code == 201:
                    ledger.confirmed.append((incident, text))
                    ledger.answers += 1
                else:
                    assert answer.status_code in (202, 503), answer.text
                    ledger.unknown.append((incident, text))


async def watcher(stack: Stack, service: str, seen: list[tuple[int, str, int]], stop: asyncio.Event,
                  subscribed: asyncio.Event) -> None:
    """One SSE client for the whole test, resuming after its last change id each time the
    stream ends (its gateway killed)."""
    last: int | None = None
    async with stack.client("viewer", sub="watcher", timeout=20) as client:
        while not stop.is_set():
            try:
                async with open_stream(client, service=service, resume_after=last) as stream:
                    subscribed.set()
                    while not stop.is_set():
                        try:
                            message = await stream.next(timeout=1)
                        except TimeoutError:
                            continue
                        assert message.event != "reset", f"the feed reset the client: {message}"
                        if message.id is not None:  # a change (the event type names it)
                            last = message.change_id
                            seen.append((message.change_id, message.json["incident_id"], message.json["version"]))
            except (AssertionError, httpx.HTTPError) as err:
                if "reset" in str(err):
                    raise
                await asyncio.sleep(RETRY_S)


async def supervise(stack: Stack, ledger: Ledger, stop: asyncio.Event) -> None:
    while not stop.is_set():
        for name, server in list(stack.processes.items()):
            if not server.alive():
                ledger.restarts[name] += 1
                stack.start(name, name)
        await asyncio.sleep(0.5)


async def progress(ledger: Ledger, stack: Stack) -> None:
    start = ledger.answers
    await wait_for_async(lambda: ledger.answers >= start + PROGRESS_BETWEEN_FAULTS, timeout=FAULT_TIMEOUT_S,
                         interval=0.2, message=f"{PROGRESS_BETWEEN_FAULTS} more answers\n{stack.logs()}")


def read_log(stack: Stack) -> dict[uuid.UUID, list[EventEnvelope]]:
    """Every record on the events topic, up to its end now, by incident."""
    async def read() -> dict[uuid.UUID, list[EventEnvelope]]:
        topic = stack.settings.topics.name("events")
        consumer = AIOKafkaConsumer(bootstrap_servers=stack.settings.kafka.bootstrap, enable_auto_commit=False)
        await consumer.start()
        log: dict[uuid.UUID, list[EventEnvelope]] = defaultdict(list)
        try:
            ends = await log_end(consumer, topic)
            async for records in read_ranges(consumer, topic, {}, ends):
                for record in records:
                    event = EventEnvelope.model_validate_json(record.value)
                    log[event.incident_id].append(event)
        finally:
            await consumer.stop()
        return log
    return asyncio.run(read())


async def kill_notifier_mid_page(stack: Stack, hook: Receiver) -> None:
    """SIGKILL the notifier while the webhook holds a page it has sent (bounded wait)."""
    await wait_for_async(lambda: stack.processes["notifier"].alive() and hook.in_flight() > 0,
                         timeout=FAULT_TIMEOUT_S, interval=0.05, message=f"a page in flight\n{stack.logs()}")
    stack.processes["notifier"].kill()


async def pages_recorded(stack: Stack, hook: Receiver, incidents: set[uuid.UUID]) -> dict[uuid.UUID, list[dict]]:
    """Wait until every incident was delivered and every delivery's page is in the ledger;
    return the ledger of each incident delivered."""
    async with stack.client("viewer", sub="paging") as client:
        async def settled() -> dict[uuid.UUID, list[dict]] | None:
            delivered = {uuid.UUID(d.body["incident"]["id"]): d.headers["Idempotency-Key"] for d in hook.received()}
            if not incidents <= delivered.keys():
                return None
            ledgers: dict[uuid.UUID, list[dict]] = {}
            for incident, key in delivered.items():
                rows = (await client.get(f"/v1/incidents/{incident}/notifications")).json()
                if key not in {r["notification_id"] for r in rows if r["type"] == "NotificationSent"}:
                    return None
                ledgers[incident] = rows
            return ledgers

        return await wait_for_async(settled, timeout=FAULT_TIMEOUT_S, interval=0.5,
                                    message=f"every incident paged and recorded\n{stack.logs()}")


def check_pages(incident: uuid.UUID, events: list[EventEnvelope], ledger: list[dict], hook: Receiver) -> None:
    """One page per incident: however often it was delivered, one key, one record."""
    deliveries = [d for d in hook.received() if d.body["incident"]["id"] == str(incident)]
    assert deliveries, f"{incident} was never paged"
    keys = {d.headers["Idempotency-Key"] for d in deliveries}
    assert len(keys) == 1, f"one page of {incident} sent with different keys: {keys}"
    assert keys == {d.body["notification_id"] for d in deliveries}
    once = {e.version: e for e in events}.values()  # a repeat on the log is the same event
    sent = [e.data for e in once if e.type == "NotificationSent"]
    assert [str(s.notification_id) for s in sent] == list(keys), f"{incident}: {sent} on the log for {keys}"
    rows = [(r["type"], r["notification_id"], r["attempt"]) for r in ledger]
    assert len(rows) == len(set(rows)), f"a double in the ledger of {incident}: {rows}"
    assert [r for r in rows if r[0] == "NotificationSent"] == [
        ("NotificationSent", str(sent[0].notification_id), sent[0].attempt)]


async def test_kill_9_and_a_broker_restart_under_load_lose_and_double_nothing(apache, postgres, hook,
                                                                               tmp_path) -> None:
    config = paging_config(tmp_path / "paging.toml", hook)
    stack = await asyncio.to_thread(start_stack, apache.bootstrap, postgres.dsn, tmp_path,
                                    WARROOM_CONFIG=str(config))
    service = f"chaos-{uuid.uuid4().hex[:8]}"
    ledger, seen = Ledger(), []
    stop, done = asyncio.Event(), asyncio.Event()  # the writers stop first; the watcher and supervisor once done
    try:
        stack.start("notifier", "notifier")
        # It pages the stack's warm-up incident once it has joined its group and caught up.
        await wait_for_async(lambda: hook.received(), timeout=FAULT_TIMEOUT_S, interval=0.2,
                             message=f"the notifier paging\n{stack.logs()}")
        subscribed = asyncio.Event()
        watching = asyncio.create_task(watcher(stack, service, seen, done, subscribed))
        await asyncio.wait_for(subscribed.wait(), 30)
        writing = [asyncio.create_task(writer(n, stack, service, ledger, stop)) for n in range(WRITERS)]
        supervising = asyncio.create_task(supervise(stack, ledger, done))
        for victim in FAULTS:
            await progress(ledger, stack)
            if victim == "broker":
                await asyncio.to_thread(apache.restart)
            elif victim == "notifier":
                await kill_notifier_mid_page(stack, hook)
            else:
                stack.processes[victim].kill()  # the supervisor starts it again
        await progress(ledger, stack)
        stop.set()
        await asyncio.gather(*writing)

        # Quiet now: every incident takes one more note, answered 201 (so the whole
        # pipeline is through), and the read model and the stream catch up with the log.
        async with stack.client("responder", sub="closing") as client:
            for incident in set(ledger.opened.values()):
                last = await client.post(f"/v1/incidents/{incident}/notes", json={"text": f"closing {incident}"})
                assert last.status_code == 201, last.text
                ledger.confirmed.append((incident, f"closing {incident}"))
        # Pages settle before the log is read, so the log holds every page's record.
        pages = await pages_recorded(stack, hook, set(ledger.opened.values()))
        log = await asyncio.to_thread(read_log, stack)
        newest = {incident: max(e.version for e in log[incident]) for incident in ledger.opened.values()}
        def streamed_to_the_end() -> bool:
            if watching.done():
                watching.result()  # the watcher's own failure, if that is why
                raise AssertionError("the SSE client stopped")
            behind = {str(i): v for i, v in newest.items()
                      if not any(seen_id == str(i) and seen_v == v for _, seen_id, seen_v in seen)}
            assert not behind, f"behind: {behind}; last seen {seen[-3:]}"
            return True

        await wait_for_async(streamed_to_the_end, timeout=60,
                             message="the SSE client seeing every incident's newest version")
        done.set()
        await asyncio.gather(watching, supervising)

        async with stack.client("viewer", sub="auditor") as client:
            for incident, events in ((i, log[i]) for i in set(ledger.opened.values())):
                # Nothing twice: a repeat on the log is the same event (readers drop it).
                by_version: dict[int, set[uuid.UUID]] = defaultdict(set)
                for event in events:
                    by_version[event.version].add(event.event_id)
                assert all(len(ids) == 1 for ids in by_version.values()), f"two events at one version of {incident}"
                kept = sorted({e.version: e for e in events}.values(), key=lambda e: e.version)
                assert [e.version for e in kept] == list(range(1, len(kept) + 1)), f"a gap in {incident}"
                assert verify(kept).valid
                assert [e.type for e in kept].count("IncidentOpened") == 1
                notes = [e.data.text for e in kept if e.type == "NoteAdded"]
                assert len(notes) == len(set(notes)), f"a note twice on {incident}"
                for answered in (t for i, t in ledger.confirmed if i == incident):
                    assert answered in notes, f"{answered!r} was answered 201 but is not on the log"
                assert set(notes) <= {t for i, t in ledger.confirmed + ledger.unknown if i == incident}

                # The read model is the log.
                row = (await client.get(f"/v1/incidents/{incident}")).json()
                assert row["version"] == kept[-1].version, (row, kept[-1].version)
                served = (await client.get(f"/v1/incidents/{incident}/events")).json()
                assert [e["event_id"] for e in served] == [str(e.event_id) for e in kept]

                check_pages(incident, kept, pages[incident], hook)

                # The stream: every change once, in order, across reconnects.
                versions = [v for _, i, v in seen if i == str(incident)]
                assert versions == list(range(1, kept[-1].version + 1)), (incident, versions)
        ids = [change for change, _, _ in seen]
        assert ids == sorted(set(ids)), "the stream repeated or reordered a change"
        assert len(ledger.opened) >= WRITERS and len(ledger.confirmed) > len(FAULTS) * PROGRESS_BETWEEN_FAULTS // 2
        for incident in pages.keys() - set(ledger.opened.values()):  # the warm-up, an open never answered
            check_pages(incident, log[incident], pages[incident], hook)
        resent = len(hook.received()) - len(pages)
        print(f"chaos: {len(ledger.opened)} incidents, {len(ledger.confirmed)} notes answered 201, "
              f"{len(ledger.unknown)} unknown, {len(seen)} changes streamed, {len(hook.received())} pages delivered "
              f"({resent} resent after a kill), restarts {dict(ledger.restarts)}")
    finally:
        stop.set()
        done.set()
        stack.stop()
