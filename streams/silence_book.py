"""The silences the intake consults, read from `<prefix>.silences` (SPEC §15).

The decider publishes each silence's rule there, in the same batch as the events that
changed it and before it answers the command (`streams.worker`). So once `catch_up`
returns, every silence whose creation was answered before it was called is in the book:
an alert sent after `POST /v1/silences` answered is swallowed, on any worker. The topic
is one compacted partition, read whole from its start by every worker (no group): a
silence is a handful of bytes and there are few.

Maintenance windows come from settings and need no reading.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError
from pydantic import ValidationError

from foundation.maintenance import MaintenanceWindow, window_stream
from foundation.settings import Settings
from streams.silence import SilenceRule

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Silencer:
    """What swallowed an alert: a silence (`window` None) or a maintenance window, and
    the stream its `AlertSilenced` goes to."""

    stream: UUID
    window: str | None = None


class Rules:
    """Silence rules and maintenance windows, and which of them swallows an alert. Pure."""

    def __init__(self, windows: list[MaintenanceWindow]) -> None:
        self.windows = windows
        self.rules: dict[UUID, SilenceRule] = {}

    def learn(self, value: bytes | None) -> None:
        if value is None:
            return
        try:
            rule = SilenceRule.model_validate_json(value)
        except ValidationError as err:  # only the decider writes the topic; never stop on it
            log.warning("silences: skipping an unreadable rule: %s", err)
            return
        self.rules[rule.id] = rule

    def silencer(self, labels: dict[str, str], at: datetime) -> Silencer | None:
        """The silence (the lowest id of those that match) or window that swallows an alert
        with `labels` received at `at`; None when none does."""
        for silence_id in sorted(self.rules):
            if self.rules[silence_id].silences(labels, at):
                return Silencer(silence_id)
        for window in self.windows:
            if window.covers(at) and all(m.matches(labels) for m in window.matchers):
                return Silencer(window_stream(window.name), window.name)
        return None


class SilenceBook(Rules):
    """`Rules` kept current from the silences topic by a consumer of its own."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings.silences.maintenance)
        self._settings = settings
        self._partition = TopicPartition(settings.topics.name("silences"), 0)
        self._consumer: AIOKafkaConsumer | None = None
        # Asks where the topic ends, on a connection of its own: a broker answers one
        # connection's requests in order, so on the reader's it would wait behind the
        # reader's long-polling fetch (up to its fetch wait, before every batch).
        self._ends: AIOKafkaConsumer | None = None
        self._reading: asyncio.Task | None = None
        self._position = 0  # the next offset to read
        self._moved = asyncio.Event()

    async def start(self) -> None:
        kafka = self._settings.kafka
        options = dict(bootstrap_servers=kafka.bootstrap, group_id=None, enable_auto_commit=False,
                       request_timeout_ms=int(kafka.request_timeout_s * 1000))
        ends = AIOKafkaConsumer(client_id=f"{kafka.client_id}-silences-end", **options)
        await ends.start()
        self._ends = ends
        consumer = AIOKafkaConsumer(client_id=f"{kafka.client_id}-silences", auto_offset_reset="earliest",
                                    fetch_max_wait_ms=100, **options)
        await consumer.start()
        consumer.assign([self._partition])
        await consumer.seek_to_beginning(self._partition)
        self._consumer = consumer
        self._reading = asyncio.ensure_future(self._read())

    async def stop(self) -> None:
        if self._reading is not None:
            self._reading.cancel()
            await asyncio.gather(self._reading, return_exceptions=True)
        for consumer in (self._consumer, self._ends):
            if consumer is not None:
                await consumer.stop()

    async def _read(self) -> None:
        assert self._consumer is not None
        while True:
            try:
                batches = await self._consumer.getmany(self._partition, timeout_ms=500)
            except KafkaError as err:
                log.info("silences: cannot read now: %r", err)
                await asyncio.sleep(0.5)  # a broker outage: retry, at a bounded rate
                continue
            for record in batches.get(self._partition, ()):
                self.learn(record.value)
            self._position = await self._consumer.position(self._partition)
            self._moved.set()

    async def catch_up(self, timeout_s: float) -> bool:
        """Read the topic up to where it ends now; False if that took longer than `timeout_s`."""
        if self._consumer is None:
            await self.start()
        assert self._ends is not None
        try:
            async with asyncio.timeout(timeout_s):
                end = (await self._ends.end_offsets([self._partition]))[self._partition]
                while self._position < end:
                    self._moved.clear()
                    await self._moved.wait()
            return True
        except (TimeoutError, KafkaError) as err:
            log.warning("silences: not caught up within %.1f s (%r); taking alerts in with the "
                        "silences read so far", timeout_s, err)
            return False
