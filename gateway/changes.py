"""The change feed fan-in: one LISTEN connection per gateway process, many subscribers.

The projector inserts a `changes` row per applied event and NOTIFYs `<schema>_changes`
inside the same transaction, so a notification means committed rows. On each
notification (and on a short poll, in case one was lost while reconnecting) the feed
reads the rows after the last one it saw, in change_id order, and offers each to every
subscriber whose filter matches. Subscribers have bounded queues: one that falls behind
is dropped (it resumes with Last-Event-ID) instead of slowing the others.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from uuid import UUID

import asyncpg

from gateway.audience import Audience
from gateway.metrics import GatewayMetrics
from foundation.change_feed import RESET, TRY_WRITER_LOCK, channel
from foundation.settings import Settings

log = logging.getLogger(__name__)

SELECT_AFTER = """
select change_id, incident_id, version, type, service, payload::text as payload
from {schema}.changes where change_id > $1 order by change_id limit $2
"""
SELECT_NEWEST = "select coalesce(max(change_id), 0) from {schema}.changes"

# Rows read and offered per round trip (at most half a client queue), so one burst of
# commits does not overflow a healthy client before it had a chance to send.
PAGE = 256
POLL_S = 1.0
GAP_POLL_S = 0.02
# A change_id missing below a visible one is either a transaction still committing (it
# will appear) or a rolled-back one (it never will). Past this, pass it by regardless.
GAP_WAIT_MAX_S = 30.0


@dataclass(slots=True)
class Change:
    change_id: int
    incident_id: UUID | None
    version: int | None
    type: str
    service: str | None
    payload: str
    _frame: bytes | None = None

    @property
    def frame(self) -> bytes:
        """The SSE message for this change, encoded once for every subscriber."""
        if self._frame is None:
            self._frame = (
                f"id: {self.change_id}\r\nevent: {self.type}\r\ndata: {self.payload}\r\n\r\n"
            ).encode()
        return self._frame

    @classmethod
    def from_row(cls, row: asyncpg.Record) -> Change:
        return cls(row["change_id"], row["incident_id"], row["version"], row["type"],
                   row["service"], row["payload"])


@dataclass(eq=False)
class Subscription:
    """One client's view of the feed: changes after `horizon` that match its filter."""

    incident: UUID | None
    service: str | None
    queue: asyncio.Queue[Change | None]
    horizon: int = 0
    closed: bool = False
    dropped: bool = False

    def matches(self, change: Change) -> bool:
        if change.type == RESET:
            return True  # every client must refetch, whatever it follows
        return (self.incident is None or change.incident_id == self.incident) and (
            self.service is None or change.service == self.service)

    def offer(self, change: Change) -> bool:
        """Queue the change; False when the queue is full and the subscriber was dropped."""
        if self.closed:
            return True
        try:
            self.queue.put_nowait(change)
            return True
        except asyncio.QueueFull:
            self.dropped = True
            self.close()
            return False

    def close(self) -> None:
        """End the subscription; the reader gets None after anything it can still take."""
        if self.closed:
            return
        self.closed = True
        if self.dropped:
            # The client is gone anyway; make room for the end marker.
            while not self.queue.empty():
                self.queue.get_nowait()
        try:
            self.queue.put_nowait(None)
        except asyncio.QueueFull:
            self.queue.get_nowait()
            self.queue.put_nowait(None)


@dataclass(eq=False)
class VersionWatch:
    """The versions of one incident the feed has delivered since the watch began, and a
    future that completes once they reach `target` (which may be set after the start)."""

    target: int | None = None
    seen: int = 0
    reached: asyncio.Future[None] = field(default_factory=lambda: asyncio.get_running_loop().create_future())

    def saw(self, version: int) -> None:
        self.seen = max(self.seen, version)
        self._check()

    def aim(self, version: int) -> None:
        self.target = version
        self._check()

    def _check(self) -> None:
        if self.target is not None and self.seen >= self.target and not self.reached.done():
            self.reached.set_result(None)


class ChangeFeed:
    def __init__(self, settings: Settings, metrics: GatewayMetrics) -> None:
        self._dsn = settings.postgres.dsn
        self._connect_timeout = settings.postgres.connect_timeout_s
        self._channel = channel(settings.postgres.schema_name)
        schema = self._schema = settings.postgres.schema_name
        self._select_after = SELECT_AFTER.format(schema=schema)
        self._select_newest = SELECT_NEWEST.format(schema=schema)
        self._queue_size = settings.sse.client_queue
        self._page = max(1, min(PAGE, self._queue_size // 2))
        self._metrics = metrics
        self._subs = Audience()
        self._watches: dict[UUID, list[VersionWatch]] = defaultdict(list)
        self._conn: asyncpg.Connection | None = None
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._gap_since: tuple[int, float] | None = None
        self._gap_final = False
        self.last_seen = 0

    # -- lifecycle -------------------------------------------------------------------

    async def start(self) -> None:
        """Connect, LISTEN and start following the feed from its current end."""
        await self._connect()
        assert self._conn is not None
        self.last_seen = await self._conn.fetchval(self._select_newest)
        self._task = asyncio.create_task(self._follow(), name="change-feed")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        for sub in list(self._subs):
            sub.close()
        self._subs.clear()
        if self._conn is not None and not self._conn.is_closed():
            await self._conn.close()

    @property
    def connected(self) -> bool:
        return self._conn is not None and not self._conn.is_closed()

    @property
    def subscribers(self) -> int:
        return len(self._subs)

    async def _connect(self) -> None:
        conn = await asyncpg.connect(self._dsn, timeout=self._connect_timeout,
                                     server_settings={"application_name": f"warroom-feed:{self._schema}"})
        try:
            await conn.add_listener(self._channel, self._notified)
        except BaseException:
            await conn.close()
            raise
        conn.add_termination_listener(lambda _: self._wake.set())
        self._conn = conn

    def _notified(self, _conn: object, _pid: int, _channel: str, payload: str) -> None:
        try:
            if int(payload) <= self.last_seen:
                return
        except ValueError:
            pass
        self._wake.set()

    # -- following -------------------------------------------------------------------

    async def _follow(self) -> None:
        backoff = 0.1
        while True:
            try:
                if not self.connected:
                    await self._connect()
                    self._metrics.feed_reconnects.inc()
                    log.info("change feed: listening again on %s", self._channel)
                    backoff = 0.1
                await self._catch_up()
                polled = False
                try:
                    await asyncio.wait_for(self._wake.wait(), timeout=self._next_wait())
                except TimeoutError:
                    polled = True
                self._wake.clear()
                if polled:
                    await self._check_rewound()
            except asyncio.CancelledError:
                raise
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as err:
                log.warning("change feed: %s; reconnecting in %.1fs", err, backoff)
                if self._conn is not None:
                    self._conn.terminate()
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
            except Exception:
                log.exception("change feed: unexpected error")
                await asyncio.sleep(1)

    def _next_wait(self) -> float:
        return GAP_POLL_S if self._gap_since is not None else POLL_S

    async def _catch_up(self) -> None:
        assert self._conn is not None
        while True:
            rows = await self._conn.fetch(self._select_after, self.last_seen, self._page)
            delivered = self._deliver(rows)
            if delivered < len(rows):
                # Stopped at a gap: if no writer is left that could fill it, read once more
                # (a commit may have landed since) and then pass it by.
                if not await self._writers_active():
                    self._gap_final = True
                    continue
                return
            if len(rows) < self._page:
                return
            await asyncio.sleep(0)  # let subscribers drain between pages

    async def _writers_active(self) -> bool:
        assert self._conn is not None
        async with self._conn.transaction():
            return not await self._conn.fetchval(TRY_WRITER_LOCK, self._schema)

    def _deliver(self, rows: list[asyncpg.Record]) -> int:
        """Hand rows to subscribers in order; stop at a gap that may still fill."""
        delivered = 0
        for row in rows:
            change_id = row["change_id"]
            if change_id > self.last_seen + 1:
                if self._gap_since is None or self._gap_since[0] != self.last_seen:
                    self._gap_since = (self.last_seen, time.monotonic())
                    self._gap_final = False
                if not self._gap_final and time.monotonic() - self._gap_since[1] < GAP_WAIT_MAX_S:
                    return delivered
                log.info("change feed: change ids %d..%d were never committed; going on",
                         self.last_seen + 1, change_id - 1)
            self._gap_since = None
            self._gap_final = False
            self._publish(Change.from_row(row))
            delivered += 1
        return delivered

    def _publish(self, change: Change) -> None:
        # Synchronous on purpose: last_seen and every queue move together, so a
        # subscriber registered between two publishes sees exactly the later ones.
        self.last_seen = change.change_id
        self._metrics.sse_messages.inc()
        audience = self._subs.of(change, everyone=change.type == RESET)
        dropped = [sub for sub in audience if not sub.offer(change)]
        for sub in dropped:
            self._metrics.sse_dropped.inc()
            self.unsubscribe(sub)
            log.info("change feed: dropped a subscriber whose queue was full")
        if change.incident_id is not None and change.version is not None:
            for watch in self._watches.get(change.incident_id, ()):
                watch.saw(change.version)

    async def _check_rewound(self) -> None:
        """A feed rebuilt from scratch (replay) restarts its ids: follow it and reset clients."""
        assert self._conn is not None
        newest = await self._conn.fetchval(self._select_newest)
        if newest < self.last_seen:
            log.warning("change feed: newest change %d is behind %d; the feed was rebuilt", newest, self.last_seen)
            self.last_seen = newest
            for sub in list(self._subs):
                self.unsubscribe(sub)

    # -- subscribers -----------------------------------------------------------------

    def subscribe(self, incident: UUID | None = None, service: str | None = None) -> Subscription:
        """Register a subscriber; it receives every matching change after `sub.horizon`."""
        sub = Subscription(incident, service, asyncio.Queue(self._queue_size), horizon=self.last_seen)
        self._subs.add(sub)
        self._metrics.sse_clients.set(len(self._subs))
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        sub.close()
        self._subs.discard(sub)
        self._metrics.sse_clients.set(len(self._subs))

    @asynccontextmanager
    async def watch_version(self, incident_id: UUID, version: int | None = None) -> AsyncIterator[VersionWatch]:
        """A watch whose `reached` completes once a change of `incident_id` at `version`
        (or at the version later given to `aim`) or later has been delivered.

        Enter it before whatever the change follows (reading the read model, sending a
        command), so a change committed in between is not missed.
        """
        watch = VersionWatch(version)
        self._watches[incident_id].append(watch)
        try:
            yield watch
        finally:
            watches = self._watches.get(incident_id, [])
            if watch in watches:
                watches.remove(watch)
            if not watches:
                self._watches.pop(incident_id, None)
            if not watch.reached.done():
                watch.reached.cancel()
