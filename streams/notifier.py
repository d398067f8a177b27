"""The notifier: reads `<prefix>.events`, pages people, and records every attempt.

Instances share the consumer group `<prefix>-notifier`, so partitions (incidents) are
split among them like the worker's. It keeps no state of its own: on every assignment
it reads its partitions from the start and folds each incident into a `streams.paging`
pager, and only once it has caught up with the log as it stood at assignment does it
act, so what the log already shows delivered is not delivered again. A restart
therefore recomputes every owed page and escalation deadline from the log; what became
owed longer ago than `notify.max_age_s` is not sent (an old log, a long outage).

Delivery is at least once: a page sent but not yet recorded when the notifier dies is
sent again with the same `Idempotency-Key` (the notification id) and the same attempt
number, and the decider records that attempt once (its command id is derived from it).
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Iterable
from datetime import UTC, datetime
from uuid import UUID

import httpx
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition

from contracts.commands import CommandBase, Escalate as EscalateCommand, RecordNotification
from contracts.common import Actor, ActorKind
from contracts.events import EventEnvelope
from streams import paging
from streams.delivery import Delivery, deliver
from streams.page_formats import page_text
from foundation.settings import Settings
from foundation.topics import main_with_topics

log = logging.getLogger(__name__)

NOTIFIER = Actor(kind=ActorKind.SYSTEM, id="notifier")
TICK_S = 0.2
MAX_SENDS = 64  # pages in flight at once across all receivers


class Notifier:
    def __init__(self, settings: Settings, *, now=lambda: datetime.now(UTC)) -> None:
        self.settings = settings
        self.notify = settings.notify
        self._now = now
        self._topic = settings.topics.name("events")
        self._pagers: dict[int, dict[UUID, paging.Pager]] = {}
        # Per partition, the incidents that may owe something: a tick looks at these only,
        # since a log holds many more incidents long settled than ones being paged.
        self._live: dict[int, set[UUID]] = {}
        self._catching_up: dict[int, int] = {}  # partition -> end offset at assignment
        self._in_flight: set[tuple] = set()
        self._tasks: set[asyncio.Task] = set()
        self._sends = asyncio.Semaphore(MAX_SENDS)
        self._consumer: AIOKafkaConsumer | None = None
        self._producer: AIOKafkaProducer | None = None
        self._client: httpx.AsyncClient | None = None

    async def run(self, stop: asyncio.Event) -> None:
        kafka = self.settings.kafka
        self._producer = AIOKafkaProducer(bootstrap_servers=kafka.bootstrap, client_id=f"{kafka.client_id}-notifier",
                                          acks="all", enable_idempotence=kafka.idempotent_producer,
                                          max_request_size=kafka.max_message_bytes)
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=kafka.bootstrap, client_id=f"{kafka.client_id}-notifier",
            group_id=f"{self.settings.topics.prefix}-notifier", enable_auto_commit=False,
            auto_offset_reset="earliest", fetch_max_wait_ms=100, session_timeout_ms=10_000,
            request_timeout_ms=int(kafka.request_timeout_s * 1000))
        self._client = httpx.AsyncClient(follow_redirects=False)
        await self._producer.start()
        await self._consumer.start()
        self._consumer.subscribe([self._topic], listener=_Rebalance(self))
        try:
            reading = asyncio.create_task(self._read(), name="notifier-read")
            ticking = asyncio.create_task(self._tick(), name="notifier-tick")
            await stop.wait()
            reading.cancel()
            ticking.cancel()
            await asyncio.gather(reading, ticking, return_exceptions=True)
            await asyncio.gather(*self._tasks, return_exceptions=True)
        finally:
            await self._consumer.stop()
            await self._producer.stop()
            await self._client.aclose()

    async def assigned(self, partitions: Iterable[TopicPartition]) -> None:
        assert self._consumer is not None
        partitions = list(partitions)
        if not partitions:
            return
        log.info("assigned partition(s) %s: reading them from the start to recompute what is owed",
                 ", ".join(str(tp.partition) for tp in sorted(partitions)))
        ends = await self._consumer.end_offsets(partitions)
        for tp in partitions:
            self._pagers[tp.partition] = {}
            self._live[tp.partition] = set()
            self._catching_up[tp.partition] = ends[tp]
        await self._consumer.seek_to_beginning(*partitions)

    def revoked(self, partitions: Iterable[TopicPartition]) -> None:
        for tp in partitions:
            self._pagers.pop(tp.partition, None)
            self._live.pop(tp.partition, None)
            self._catching_up.pop(tp.partition, None)

    async def _read(self) -> None:
        assert self._consumer is not None
        while True:
            batches = await self._consumer.getmany(timeout_ms=200, max_records=2_000)
            for tp, records in batches.items():
                pagers, live = self._pagers.get(tp.partition), self._live.get(tp.partition)
                if pagers is None or live is None:
                    continue
                for record in records:
                    self._apply(pagers, live, record.value)
            for tp in self._consumer.assignment():
                end = self._catching_up.get(tp.partition)
                if end is not None and await self._consumer.position(tp) >= end:
                    del self._catching_up[tp.partition]
                    self._caught_up(tp.partition)

    def _caught_up(self, partition: int) -> None:
        # Say once what the age limit holds back, so "why was nobody paged" has an answer.
        now = self._now()
        pagers = self._pagers.get(partition, {}).values()
        stale = [(p.incident_id, a) for p in pagers for a in paging.expired(p, now, self.notify)]
        if stale:
            log.info("partition %d: %d page(s) or escalation(s) of %d incident(s) owed longer ago than "
                     "notify.max_age_s=%g are not sent", partition, len(stale), len({i for i, _ in stale}),
                     self.notify.max_age_s)

    def _apply(self, pagers: dict[UUID, paging.Pager], live: set[UUID], raw: bytes | None) -> None:
        try:
            event = EventEnvelope.model_validate_json(raw or b"")
        except ValueError:
            return  # the projector dead-letters what it cannot read; a page needs a readable event
        pager = paging.evolve(pagers.get(event.incident_id), event, self.notify)
        if pager is not None:
            pagers[event.incident_id] = pager
            live.add(event.incident_id)

    async def _tick(self) -> None:
        while True:
            now = self._now()
            for partition, pagers in list(self._pagers.items()):
                live = self._live.get(partition, set())
                if partition in self._catching_up:
                    continue
                for incident in list(live):
                    pager = pagers[incident]
                    for action in paging.due(pager, now, self.notify):
                        self._start(pager, action)
                    if paging.settled(pager, now, self.notify):
                        live.discard(incident)
            self._forget_recorded()
            await asyncio.sleep(TICK_S)

    def _start(self, pager: paging.Pager, action: paging.Action) -> None:
        key = _key(pager.incident_id, action)
        if key in self._in_flight:
            return
        self._in_flight.add(key)
        work = self._page(pager, action) if isinstance(action, paging.Deliver) else self._escalate(pager, action)
        task = asyncio.create_task(work, name=f"page-{key[1]}")
        self._tasks.add(task)
        task.add_done_callback(lambda done: self._finished(done, key))

    def _finished(self, task: asyncio.Task, key: tuple) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            # Not recorded (the broker refused the command): offer it again on a later tick.
            log.warning("recording %s failed: %s", key, task.exception())
            self._in_flight.discard(key)

    def _forget_recorded(self) -> None:
        # An attempt stays in flight until the log shows it (then `due` no longer offers it).
        now = self._now()
        owed = {_key(incident, a) for partition, live in self._live.items() for incident in live
                for a in paging.due(self._pagers[partition][incident], now, self.notify)}
        self._in_flight &= owed

    async def _page(self, pager: paging.Pager, action: paging.Deliver) -> None:
        page, attempt = action.page, action.attempt
        receiver = self.notify.receivers.get(page.receiver)
        if receiver is None:
            kind, result = "webhook", Delivery(ok=False, error=f"receiver {page.receiver!r} is not configured")
        else:
            kind = receiver.kind
            async with self._sends:
                result = await deliver(self._client, receiver, page_text(pager, page, self.notify.dashboard_url))
        retry = not result.ok and receiver is not None and paging.will_retry(attempt, self.notify)
        if not result.ok:
            log.warning("page %s to %s failed (attempt %d): %s", page.notification_id, page.receiver, attempt,
                        result.error)
        await self._send(RecordNotification(
            command_id=paging.attempt_command_id(page.notification_id, attempt), incident_id=pager.incident_id,
            actor=NOTIFIER, issued_at=self._now(), notification_id=page.notification_id, receiver=page.receiver,
            kind=kind, attempt=attempt, outcome="sent" if result.ok else "failed", status=result.status,
            level=page.level, trigger=page.trigger, trigger_event_id=page.trigger_event_id,
            error=result.error, will_retry=retry))

    async def _escalate(self, pager: paging.Pager, action: paging.Escalate) -> None:
        await self._send(EscalateCommand(
            command_id=paging.escalation_command_id(pager.incident_id, action.trigger_event_id, action.level,
                                                    action.receivers),
            incident_id=pager.incident_id, actor=NOTIFIER, issued_at=self._now(), level=action.level,
            receivers=list(action.receivers), trigger_event_id=action.trigger_event_id))

    async def _send(self, command: CommandBase) -> None:
        assert self._producer is not None
        await self._producer.send_and_wait(self.settings.topics.name("commands"),
                                           key=str(command.incident_id).encode(),
                                           value=command.model_dump_json(by_alias=True).encode())


def _key(incident_id: UUID, action: paging.Action) -> tuple:
    if isinstance(action, paging.Deliver):
        return ("page", action.page.notification_id, action.attempt)
    return ("escalate", incident_id, action.trigger_event_id, action.level, action.receivers)


class _Rebalance(ConsumerRebalanceListener):
    def __init__(self, notifier: Notifier) -> None:
        self._notifier = notifier

    async def on_partitions_revoked(self, revoked) -> None:
        self._notifier.revoked(revoked)

    async def on_partitions_assigned(self, assigned) -> None:
        await self._notifier.assigned(assigned)


def run(settings: Settings) -> None:
    """Run the notifier until SIGTERM or SIGINT."""

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await Notifier(settings).run(stop)

    asyncio.run(main())


def main() -> None:
    """`python -m streams.notifier`: settings from the environment, topics ensured, run."""
    logging.basicConfig(level=logging.INFO)
    main_with_topics("streams.notifier", run)


if __name__ == "__main__":
    main()
