"""The projector's connections: PostgreSQL (migrated before use) and its Kafka clients,
each made as many times as it takes, with a backoff a stop request cuts short."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from dataclasses import dataclass

import asyncpg
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.errors import KafkaError

from foundation.fetching import FETCH_WAIT_MS
from foundation.log_identity import LogProbe
from foundation.settings import Settings
from projections.schema import migrate

log = logging.getLogger("warroom.projector")

# Errors after which the connection is dropped and the batch read again from the table's offsets.
DATABASE_ERRORS = (OSError, asyncio.TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError)
BACKOFF_MAX_S = 5.0


class Stopped(Exception):
    """Raised out of a connect/retry loop once a stop was requested."""


class Patience:
    """Waiting between attempts, until `stopping` is set."""

    def __init__(self, stopping: asyncio.Event) -> None:
        self.stopping = stopping

    def check(self) -> None:
        """Raise `Stopped` once a stop was requested."""
        if self.stopping.is_set():
            raise Stopped

    async def backoff(self, attempt: int) -> None:
        """Wait longer the more attempts failed (jittered, at most `BACKOFF_MAX_S`)."""
        await self.pause(min(BACKOFF_MAX_S, 0.1 * 2 ** min(attempt, 10)) * random.uniform(0.5, 1.0))

    async def pause(self, seconds: float) -> None:
        """Wait `seconds`, or less if a stop is requested."""
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self.stopping.wait(), max(0.0, seconds))


async def connect_db(settings: Settings, schema: str, patience: Patience) -> asyncpg.Connection:
    """A connection to PostgreSQL with `schema` migrated, once the server answers."""
    pg = settings.postgres
    attempt = 0
    while True:
        patience.check()
        try:
            conn = await asyncpg.connect(pg.dsn, timeout=pg.connect_timeout_s)
            await migrate(conn, schema)
            return conn
        except DATABASE_ERRORS as err:
            attempt += 1
            log.warning("PostgreSQL not available (%r), retrying", err)
            await patience.backoff(attempt)


async def close_db(conn: asyncpg.Connection | None) -> None:
    """Close `conn`, or terminate it if it does not close in time."""
    if conn is not None and not conn.is_closed():
        with contextlib.suppress(Exception):
            await asyncio.wait_for(conn.close(), 5)
        if not conn.is_closed():
            conn.terminate()


@dataclass(frozen=True)
class KafkaClients:
    """The group consumer of the events topic, the dead-letter producer, the log probe."""

    consumer: AIOKafkaConsumer
    producer: AIOKafkaProducer
    probe: LogProbe

    async def stop(self) -> None:
        for client in (self.consumer, self.producer, self.probe):
            with contextlib.suppress(Exception):
                await asyncio.wait_for(client.stop(), 10)


async def start_kafka(settings: Settings, patience: Patience) -> KafkaClients:
    """The projector's Kafka clients, started once the broker answers (not yet subscribed)."""
    k = settings.kafka
    attempt = 0
    while True:
        patience.check()
        consumer = AIOKafkaConsumer(
            bootstrap_servers=k.bootstrap,
            client_id=f"{k.client_id}-projector",
            group_id=settings.projector.group_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            isolation_level="read_committed",
            request_timeout_ms=int(k.request_timeout_s * 1000),
            fetch_max_wait_ms=FETCH_WAIT_MS,  # as the worker's: Tansu answers a fetch only then
        )
        producer = AIOKafkaProducer(
            bootstrap_servers=k.bootstrap,
            client_id=f"{k.client_id}-projector",
            enable_idempotence=k.idempotent_producer,
            acks="all",
            max_request_size=k.max_message_bytes,
            request_timeout_ms=int(k.request_timeout_s * 1000),
        )
        probe = LogProbe(k, "projector-log-check")
        try:
            await consumer.start()
            await producer.start()
            await probe.start()
            return KafkaClients(consumer, producer, probe)
        except (KafkaError, OSError) as err:
            attempt += 1
            for client in (consumer, producer, probe):
                with contextlib.suppress(Exception):
                    await client.stop()
            log.warning("Kafka at %s not available (%r), retrying", k.bootstrap, err)
            await patience.backoff(attempt)
