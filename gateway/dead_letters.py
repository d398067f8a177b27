"""`warroom_dead_letters_total{topic}` on /metrics: the dead letters on the DLQ, by the
topic they came from.

Dead letters are written by the worker and the projector, not by the gateway, so the
gateway counts what is on the DLQ topic itself: every copy reads it from the beginning
(no consumer group) and keeps following it. The count is therefore the same on every
gateway, survives restarts of whoever wrote the letters, and covers the DLQ's retention.
Dead letters are rare, so reading them all costs next to nothing.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from aiokafka import AIOKafkaConsumer
from aiokafka.errors import KafkaError
from fastapi import FastAPI
from prometheus_client import CollectorRegistry, Counter

from foundation.settings import Settings

log = logging.getLogger(__name__)

RETRY_S = 1.0


def source_topic(headers: list[tuple[str, bytes]] | tuple, value: bytes | None) -> str:
    """The topic a dead letter came from: its `warroom-source` header ("topic/partition/
    offset"), else the letter's `topic` field, else "unknown"."""
    for name, raw in headers or ():
        if name == "warroom-source" and raw:
            return raw.decode("utf-8", "replace").rsplit("/", 2)[0]
    try:
        topic = json.loads(value or b"").get("topic")
    except (ValueError, AttributeError):
        topic = None
    return topic if isinstance(topic, str) and topic else "unknown"


class DeadLetterCount:
    """Follows the DLQ topic and counts its letters per source topic."""

    def __init__(self, settings: Settings, registry: CollectorRegistry) -> None:
        self._settings = settings
        self.letters = Counter("warroom_dead_letters", "Dead letters on the DLQ topic, by the topic they came from",
                               ["topic"], registry=registry)
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._follow(), name="dead-letter-count")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _follow(self) -> None:
        kafka = self._settings.kafka
        consumer = AIOKafkaConsumer(
            self._settings.topics.name("dlq"), bootstrap_servers=kafka.bootstrap,
            client_id=f"{kafka.client_id}-gateway-dlq", group_id=None, enable_auto_commit=False,
            auto_offset_reset="earliest", metadata_max_age_ms=30_000,
            request_timeout_ms=int(kafka.request_timeout_s * 1000))
        while True:  # the gateway serves without this count rather than not at all
            try:
                await consumer.start()
                break
            except (KafkaError, OSError) as err:
                log.warning("dead-letter count: Kafka not available yet (%s); retrying", err)
                await asyncio.sleep(RETRY_S)
        try:
            while True:
                try:
                    batches = await consumer.getmany(timeout_ms=1000, max_records=1000)
                except KafkaError as err:  # aiokafka reconnects by itself
                    log.warning("dead-letter count: %s", err)
                    await asyncio.sleep(RETRY_S)
                    continue
                for records in batches.values():
                    for record in records:
                        self.letters.labels(source_topic(record.headers, record.value)).inc()
        finally:
            await consumer.stop()


@asynccontextmanager
async def dead_letter_count(app: FastAPI) -> AsyncIterator[None]:
    """Lifespan: count dead letters while the app serves."""
    count = DeadLetterCount(app.state.settings, app.state.metrics.registry)
    count.start()
    try:
        yield
    finally:
        await count.stop()
