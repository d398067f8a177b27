"""Whether the log the read models describe is still the one the broker holds.

Every few seconds the gateway compares what the read models record (the cluster they
were read from, the offsets they reached) with the broker (`foundation.log_identity`).
While the log went back, `/readyz` answers 503 naming why, and so does every `/v1` call
(`LogGuard`): the read models describe records that are gone, and commands would be
decided by a worker whose state came from them. On the embedded default the projector
rebuilds the read models from the new log within seconds, and the gateway is ready again.

When the broker's cluster changes, the outcome listener is moved to the start of the new
log, where the answers to commands sent since it came back are.
"""

from __future__ import annotations

import asyncio
import logging

import asyncpg
from aiokafka.errors import KafkaError
from starlette.types import ASGIApp, Receive, Scope, Send

from gateway.commands import CommandBus
from gateway.problems import Problem
from projections.replay import log_reset
from projections import offsets
from projections.apply import PROJECTION
from foundation.log_identity import LogProbe
from foundation.settings import Settings

log = logging.getLogger(__name__)

CHECK_EVERY_S = 2.0


class LogWatch:
    """Checks the log every CHECK_EVERY_S; `problem` says why it went back, else None."""

    def __init__(self, settings: Settings, pool: asyncpg.Pool, bus: CommandBus) -> None:
        self._settings = settings
        self._pool = pool
        self._bus = bus
        self._topic = settings.topics.name("events")
        self._probe = LogProbe(settings.kafka, "gateway-log-watch")
        self._task: asyncio.Task[None] | None = None
        self._cluster: str | None = None
        self.problem: str | None = None

    async def start(self) -> None:
        await self._probe.start()
        await self.check()
        self._task = asyncio.create_task(self._follow(), name="log-watch")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        await self._probe.stop()

    async def _follow(self) -> None:
        while True:
            await asyncio.sleep(CHECK_EVERY_S)
            try:
                await self.check()
            except (KafkaError, OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as err:
                # Readiness reports the server that is away; the log is judged once both answer.
                log.info("log watch: cannot check the log now: %r", err)
            except Exception:
                log.exception("log watch: unexpected error; checking on")

    async def check(self) -> None:
        """Compare the broker with what the read models record; set `problem`."""
        schema = self._settings.postgres.schema_name
        partitions = await self._probe.partitions(self._topic)
        known = await log_reset.recorded(self._pool, schema, self._topic)
        stored = await offsets.load(self._pool, schema, PROJECTION, self._topic, partitions)
        problem, cluster = await self._probe.check(known.cluster_id if known else None, self._topic, stored)
        if self._cluster is not None and cluster != self._cluster:
            log.warning("log watch: the broker is another cluster now (%s, was %s)", cluster, self._cluster)
            await self._bus.follow_new_log()
        self._cluster = cluster
        if problem != self.problem:
            (log.warning if problem else log.info)("log watch: %s", problem or "the log is the one the read models describe")
        self.problem = problem


class LogGuard:
    """ASGI middleware: every `/v1` request answers 503 while the log went back."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        watch: LogWatch | None = getattr(scope.get("app").state, "log_watch", None) if scope.get("app") else None
        if scope["type"] == "http" and watch is not None and watch.problem and scope["path"].startswith("/v1/"):
            problem = Problem.unavailable(f"the log went back: {watch.problem}; the read models no longer "
                                          f"describe it and are not served until they do", retry_after_s=2)
            await problem.response()(scope, receive, send)
            return
        await self.app(scope, receive, send)
