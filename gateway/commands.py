"""Sending commands to the decider and hearing what became of them: the gateway's one
command path. Every route that changes something calls `CommandBus.send`, and gets from
it, without doing anything itself:

- **503 when nothing was sent.** The command is a record on the commands topic keyed by
  its incident. If the broker does not acknowledge it within `gateway.command_timeout_s`,
  `send` raises `CommandNotSent`, a 503 `unavailable` problem: never "sent" for a record
  that is not on the log (the producer gives a record up once it is that old).
- **The decider's answer.** The decider answers on the outcomes topic with one
  `CommandOutcome` per command. Every gateway reads every outcome partition from the end
  (no consumer group), so whichever copy sent a command hears its answer, and resolves
  the waiting request by command_id. No answer in time: `send` returns None (202).
- **Read-your-writes.** An accepted command is answered only once the read models this
  gateway serves show the incident at the answered version: `send` watches the change
  feed for the incident before producing, and waits (at most `gateway.read_model_wait_s`)
  for that version, so a GET right after the answer never sees a 404 or an older
  version. If the projector is slower than that, the answer still goes out, with the
  header `Warroom-Read-Model: behind` (set by `ReadYourWrites` on whatever response the
  route returns).
"""

from __future__ import annotations

import asyncio
import logging
import time
from contextvars import ContextVar
from dataclasses import dataclass
from uuid import UUID

import asyncpg
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field, ValidationError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from contracts import CommandBase, CommandOutcome
from foundation.fetching import FETCH_WAIT_MS
from foundation.settings import Settings
from gateway.changes import ChangeFeed, VersionWatch
from gateway.metrics import GatewayMetrics
from gateway.problems import Problem

log = logging.getLogger(__name__)

READ_MODEL_HEADER = "Warroom-Read-Model"
# After the command timeout, how long a record still in the producer's buffer is given to
# be either acknowledged or given up (the producer gives it up at its next attempt).
UNSENT_GRACE_S = 2.0
# The version the read models show of a stream: an incident's, else a silence's.
SELECT_STREAM_VERSION = """
select coalesce((select version from incidents where id = $1),
                (select version from silences where silence_id = $1)) as version
"""


class CommandPending(BaseModel):
    """The outcome could not be told in time; the command may still take effect."""

    command_id: UUID
    id: UUID = Field(description="the incident or silence the command is for")
    detail: str = "the command was sent but its outcome is not known yet; watch the stream or retry the read"



PENDING = {202: {"model": CommandPending, "description": "outcome not known in time"}}
"""The 202 answer of a command route, for its `responses`."""


async def decided(bus: CommandBus, command: CommandBase, location: str) -> CommandOutcome | JSONResponse:
    """The accepted outcome of `command`; a 202 (pointing at `location`) when it is not known
    in time; a rejection raises its problem."""
    outcome = await bus.send(command)
    if outcome is None:
        pending = CommandPending(command_id=command.command_id, id=command.incident_id)
        return JSONResponse(pending.model_dump(mode="json"), status_code=202, headers={"Location": location})
    if not outcome.accepted:
        raise rejection(outcome)
    return outcome


def rejection(outcome: CommandOutcome) -> Problem:
    """The problem answering a command the decider refused."""
    detail = outcome.detail or (outcome.code or "rejected").replace("_", " ")
    if outcome.code == "not_found":
        return Problem.not_found(detail)
    if outcome.code == "validation_error":
        return Problem.invalid(outcome.field or "body", detail)
    return Problem(409, outcome.code or "invalid_transition", detail,
                   current_status=outcome.status, current_version=outcome.version)


class CommandNotSent(Problem):
    """503: the broker did not acknowledge the command, so it is not on the log."""

    def __init__(self, detail: str) -> None:
        super().__init__(503, "unavailable", detail, headers={"Retry-After": "1"})


@dataclass
class _Answer:
    """What the command path learnt about the request it serves (one per HTTP request)."""

    read_model_behind: bool = False


_answer: ContextVar[_Answer | None] = ContextVar("warroom_command_answer", default=None)


class ReadYourWrites:
    """ASGI middleware: adds `Warroom-Read-Model: behind` to the response of a request whose
    command was answered before the read models showed it (see `CommandBus.send`)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        answer = _Answer()
        token = _answer.set(answer)

        async def send_with_header(message: Message) -> None:
            if message["type"] == "http.response.start" and answer.read_model_behind:
                message = {**message, "headers": [*message.get("headers", []),
                                                  (READ_MODEL_HEADER.lower().encode(), b"behind")]}
            await send(message)

        try:
            await self.app(scope, receive, send_with_header)
        finally:
            _answer.reset(token)


class CommandBus:
    """Produces commands and waits for their outcomes."""

    def __init__(self, settings: Settings, metrics: GatewayMetrics, feed: ChangeFeed, pool: asyncpg.Pool) -> None:
        self._settings = settings
        self._metrics = metrics
        self._feed = feed
        self._pool = pool
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
            # A record older than the command timeout is given up, not delivered later: the
            # request it belonged to has been answered 503 by then.
            request_timeout_ms=int(min(kafka.request_timeout_s, self._settings.gateway.command_timeout_s) * 1000),
        )
        await self.producer.start()
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=kafka.bootstrap,
            client_id=f"{kafka.client_id}-gateway-outcomes",
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="latest",
            # Tansu answers a fetch only when its wait is over (streams.fetch_wait).
            fetch_max_wait_ms=FETCH_WAIT_MS,
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

    async def follow_new_log(self) -> None:
        """The broker holds another log now: hear outcomes from its start, where the answers
        to the commands sent since it came back are (positions in the old log mean nothing)."""
        if self._consumer is None:
            return
        partitions = await self._outcome_partitions()
        self._consumer.assign(partitions)
        await self._consumer.seek_to_beginning(*partitions)

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
        """Produce `command`, wait for its outcome and, once accepted, for the read models to
        show it (see the module docstring); None when the outcome cannot be told in time.

        None means the command is on the log and may or may not take effect yet. Raises
        `CommandNotSent` (503) when the broker did not acknowledge it: then it is not.
        """
        assert self.producer is not None, "CommandBus.start() was not awaited"
        # Watched before producing: the change at the answered version comes after this.
        async with self._feed.watch_version(command.incident_id) as watch:
            outcome = await self._decided(command, timeout_s)
            if outcome is not None and outcome.accepted and outcome.version > 0:
                if not await self._read_model_shows(command.incident_id, outcome, watch):
                    self._metrics.read_model_behind.inc()
                    answer = _answer.get()
                    if answer is not None:
                        answer.read_model_behind = True
        return outcome

    async def _decided(self, command: CommandBase, timeout_s: float | None) -> CommandOutcome | None:
        timeout_s = self._settings.gateway.command_timeout_s if timeout_s is None else timeout_s
        kind = command.type  # type: ignore[attr-defined]
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        started = time.perf_counter()
        waiter: asyncio.Future[CommandOutcome] = loop.create_future()
        # Registered before producing: the outcome may arrive before the acknowledgement.
        self._waiting[command.command_id] = waiter
        try:
            await self._produce(command, deadline)
            try:
                async with asyncio.timeout_at(deadline):
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

    async def _produce(self, command: CommandBase, deadline: float) -> None:
        """Return once the broker acknowledged the record; `CommandNotSent` when it did not."""
        assert self.producer is not None
        ack: asyncio.Future | None = None
        try:
            async with asyncio.timeout_at(deadline):
                ack = await self.producer.send(
                    self._topic, key=str(command.incident_id).encode(),
                    value=command.model_dump_json(by_alias=True).encode())
                await asyncio.shield(ack)
            return
        except TimeoutError:
            pass
        except KafkaError as err:
            raise CommandNotSent(f"Kafka refused the command ({type(err).__name__}: {err}); it was not sent") from None
        if ack is not None:
            # Still in the producer's buffer: it is either acknowledged or given up shortly.
            try:
                await asyncio.wait_for(asyncio.shield(ack), UNSENT_GRACE_S)
                return  # acknowledged after all: sent
            except (TimeoutError, KafkaError):
                pass
        raise CommandNotSent(f"Kafka did not acknowledge the command within "
                             f"{self._settings.gateway.command_timeout_s:g}s; it was not sent")

    async def _read_model_shows(self, incident_id: UUID, outcome: CommandOutcome, watch: VersionWatch) -> bool:
        """Wait (bounded) until the read model holds `incident_id` at `outcome.version`."""
        watch.aim(outcome.version)
        if watch.reached.done():
            return True
        # A command that appended nothing answers with a version committed before the watch.
        if outcome.events == 0 and await self._read_model_version(incident_id) >= outcome.version:
            return True
        try:
            await asyncio.wait_for(asyncio.shield(watch.reached), self._settings.gateway.read_model_wait_s)
            return True
        except TimeoutError:
            # The feed may have missed it (reconnecting, a replay's switch): ask the table.
            return await self._read_model_version(incident_id) >= outcome.version

    async def _read_model_version(self, incident_id: UUID) -> int:
        try:
            row = await self._pool.fetchrow(SELECT_STREAM_VERSION, incident_id)
        except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as err:
            log.warning("read-your-writes: cannot read incident %s from the read model: %s", incident_id, err)
            return 0
        return row["version"] if row is not None and row["version"] is not None else 0
