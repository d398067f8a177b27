"""Sending commands to the decider and hearing what became of them.

A command goes to the commands topic keyed by its incident; the decider answers on the
outcomes topic with one CommandOutcome per command. Every gateway reads every outcome
partition from the end (no consumer group), so whichever copy sent a command hears its
answer, and resolves the waiting request by command_id.
"""

from __future__ import annotations

import asyncio
import logging
import time
from uuid import UUID

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaError
from pydantic import ValidationError

from contracts import CommandBase, CommandOutcome
from gateway.metrics import GatewayMetrics
from warroom.settings import Settings

log = logging.getLogger(__name__)


class CommandBus:
    """Produces commands and waits for their outcomes."""

    def __init__(self, settings: Settings, metrics: GatewayMetrics) -> None:
        self._settings = settings
        self._metrics = metrics
        self._topic = settings.topics.name("commands")
        self._outcomes_topic = settings.topics.name("outcomes")
        self._waiting: dict[UUID, asyncio.Future[CommandOutcome]] = {}
        self.producer: AIOKafkaProducer | None = None
        self._consumer: AIOKafkaConsumer | None = None
        self._listener: asyncio.Task[None] | None = None
        self.listening = asyncio.Event()

    async def start(self) -> None:
        """Connect the producer and position the outcome listener at the end of every partition.

        Returns once the listener's positions are fixed, so no outcome of a command sent
        afterwards can be missed.
        """
        kafka = self._settings.kafka
        self.producer = AIOKafkaProducer(
            bootstrap_servers=kafka.bootstrap,
            client_id=f"{kafka.client_id}-gateway",
            enable_idempotence=kafka.idempotent_producer,
            acks="all",
            linger_ms=0,
            max_request_size=kafka.max_message_bytes,
            request_timeout_ms=int(kafka.request_timeout_s * 1000),
        )
        await self.producer.start()
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=kafka.bootstrap,
            client_id=f"{kafka.client_id}-gateway-outcomes",
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="latest",
            fetch_max_wait_ms=100,
            request_timeout_ms=int(kafka.request_timeout_s * 1000),
        )
        await self._consumer.start()
        partitions = await self._outcome_partitions()
        self._consumer.assign(partitions)
        await self._consumer.seek_to_end(*partitions)
        for tp in partitions:
            await self._consumer.position(tp)
        self._listener = asyncio.create_task(self._listen(), name="outcome-listener")
        self.listening.set()

    async def _outcome_partitions(self) -> list[TopicPartition]:
        assert self.producer is not None
        parts = await self.producer.partitions_for(self._outcomes_topic)
        return [TopicPartition(self._outcomes_topic, p) for p in sorted(parts)]

    @property
    def hearing_outcomes(self) -> bool:
        """True while the outcome listener runs."""
        return self.listening.is_set() and self._listener is not None and not self._listener.done()

    async def stop(self) -> None:
        self.listening.clear()
        if self._listener is not None:
            self._listener.cancel()
            await asyncio.gather(self._listener, return_exceptions=True)
        for waiter in self._waiting.values():
            waiter.cancel()
        if self._consumer is not None:
            await self._consumer.stop()
        if self.producer is not None:
            await self.producer.stop()

    async def _listen(self) -> None:
        assert self._consumer is not None
        while True:
            try:
                batches = await self._consumer.getmany(timeout_ms=500, max_records=1000)
            except asyncio.CancelledError:
                raise
            except KafkaError as err:
                # aiokafka reconnects by itself; keep listening.
                log.warning("outcome listener: %s", err)
                await asyncio.sleep(0.5)
                continue
            except Exception:
                # Without the listener every command would end in 202: never let it die.
                log.exception("outcome listener: unexpected error; listening on")
                await asyncio.sleep(0.5)
                continue
            for records in batches.values():
                for record in records:
                    self._resolve(record.value)

    def _resolve(self, raw: bytes | None) -> None:
        if not raw:
            return
        try:
            outcome = CommandOutcome.model_validate_json(raw)
        except ValidationError:
            log.warning("outcome listener: skipping a message that is not a CommandOutcome")
            return
        waiter = self._waiting.pop(outcome.command_id, None)
        if waiter is not None and not waiter.done():
            waiter.set_result(outcome)

    async def send(self, command: CommandBase, timeout_s: float | None = None) -> CommandOutcome | None:
        """Produce `command` and wait for its outcome; None when it cannot be told in time.

        None means the command may or may not take effect (it may still be in flight).
        Raises KafkaError when the broker refused it outright (then it was not sent).
        """
        assert self.producer is not None, "CommandBus.start() was not awaited"
        timeout_s = self._settings.gateway.command_timeout_s if timeout_s is None else timeout_s
        kind = command.type  # type: ignore[attr-defined]
        started = time.perf_counter()
        waiter: asyncio.Future[CommandOutcome] = asyncio.get_running_loop().create_future()
        # Registered before producing: the outcome may arrive before send_and_wait returns.
        self._waiting[command.command_id] = waiter
        try:
            async with asyncio.timeout(timeout_s):
                await self.producer.send_and_wait(
                    self._topic,
                    key=str(command.incident_id).encode(),
                    value=command.model_dump_json(by_alias=True).encode(),
                )
                outcome = await waiter
        except TimeoutError:
            self._metrics.commands.labels(kind, "timeout").inc()
            return None
        except BaseException:
            self._metrics.commands.labels(kind, "unsent").inc()
            raise
        finally:
            self._waiting.pop(command.command_id, None)
        label = "accepted" if outcome.accepted else (outcome.code or "rejected")
        self._metrics.commands.labels(kind, label).inc()
        self._metrics.command_latency.labels(kind).observe(time.perf_counter() - started)
        return outcome
