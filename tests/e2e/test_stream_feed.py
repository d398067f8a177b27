"""The SSE fan-in under conditions the whole stack cannot stage on demand.

Gateways run in this process (uvicorn on free ports) against the real Kafka and
PostgreSQL; change rows are written here the way the projector writes them (under its
writer lock, NOTIFY in the same transaction), so the test decides exactly what is
committed when: bursts, rollbacks, pruning, a killed LISTEN connection, a slow reader.
"""

from __future__ import annotations

import asyncio
import json
import socket
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime

import asyncpg
import httpx
import pytest
import uvicorn

from gateway.app import create_app
from gateway.auth import mint_token
from harness.waiting import wait_for_async
from sse_client import EventStream, open_stream
from warroom.servers import free_port
from foundation.settings import Settings, load_settings

from stack import SECRET, ensure_topics

WRITER_LOCK = "select pg_advisory_xact_lock(hashtextextended('warroom.changes:' || $1, 0))"


@pytest.fixture
async def feed_settings(kafka, postgres) -> Settings:
    tag = uuid.uuid4().hex[:8]
    settings = load_settings(
        kafka={"bootstrap": kafka.bootstrap},
        postgres={"dsn": postgres.dsn, "schema_name": f"feed_{tag}"},
        topics={"prefix": f"feed{tag}", "partitions": 1},
        auth={"jwt_secret": SECRET},
        sse={"heartbeat_s": 1, "client_queue": 100},
    )
    await ensure_topics(settings)
    return settings


@asynccontextmanager
async def serving(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """A gateway for `settings` in this process; yields a viewer client for it."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(settings), host="127.0.0.1", port=port,
                                           log_level="warning", lifespan="on"))
    task = asyncio.create_task(server.serve())
    await wait_for_async(lambda: server.started or task.done(), timeout=60, message="in-process gateway")
    assert not task.done(), task.exception()
    token = mint_token(settings, "feed-test", ["viewer"])
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30,
                                     headers={"Authorization": f"Bearer {token}"}) as client:
            yield client
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 30)


class ChangeWriter:
    """Appends change rows as the projector does: ids allocated under its lock, NOTIFY on commit."""

    def __init__(self, conn: asyncpg.Connection, schema: str) -> None:
        self.conn, self.schema = conn, schema
        self.incident = uuid.uuid4()
        self.version = 0

    async def commit(self, count: int, padding: int = 0, service: str = "feed") -> list[int]:
        async with self.conn.transaction():
            return await self._append(count, padding, service, notify=True)

    async def roll_back(self, count: int) -> None:
        """Allocate ids and abandon them: the gap a crashed projector leaves."""
        tx = self.conn.transaction()
        await tx.start()
        await self._append(count, 0, "feed", notify=False)
        await tx.rollback()
        self.version -= count

    async def _append(self, count: int, padding: int, service: str, notify: bool) -> list[int]:
        s = self.schema
        await self.conn.execute(WRITER_LOCK, s)
        ids = []
        for _ in range(count):
            self.version += 1
            change_id = await self.conn.fetchval(f"select nextval('{s}.changes_change_id_seq')")
            now = datetime.now(UTC)
            payload = {"change_id": change_id, "incident_id": str(self.incident), "version": self.version,
                       "type": "NoteAdded", "occurred_at": now.isoformat(),
                       "data": {"text": "x" * padding}, "incident": {"service": service}}
            await self.conn.execute(
                f"insert into {s}.changes (change_id, incident_id, version, type, service, occurred_at, payload)"
                " values ($1, $2, $3, 'NoteAdded', $4, $5, $6::jsonb)",
                change_id, self.incident, self.version, service, now, json.dumps(payload))
            ids.append(change_id)
        if notify:
            await self.conn.execute("select pg_notify($1, $2)", f"{s}_changes", str(ids[-1]))
        return ids


@pytest.fixture
async def writer(feed_settings: Settings) -> AsyncIterator[ChangeWriter]:
    conn = await asyncpg.connect(feed_settings.postgres.dsn)
    try:
        from projections.schema import migrate

        await migrate(conn, feed_settings.postgres.schema_name)
        yield ChangeWriter(conn, feed_settings.postgres.schema_name)
    finally:
        await conn.close()


async def received(stream: EventStream, count: int) -> list[int]:
    messages = await stream.take(count)
    return [m.change_id for m in messages]


async def test_every_gateway_gets_every_change_in_commit_order(feed_settings, writer) -> None:
    async with serving(feed_settings) as one, serving(feed_settings) as two:
        async with open_stream(one) as a, open_stream(two) as b:
            written = []
            for size in (1, 5, 300, 2):  # 300 spans several pages of the fan-in
                written += await writer.commit(size)
            assert await received(a, len(written)) == written
            assert await received(b, len(written)) == written


async def test_a_rolled_back_id_does_not_hold_the_stream(feed_settings, writer) -> None:
    async with serving(feed_settings) as client, open_stream(client) as stream:
        before = await writer.commit(1)
        await writer.roll_back(3)
        after = await writer.commit(2)
        # Well within the fan-in's 30 s patience: the writer lock is free, so the gap is final.
        async with asyncio.timeout(5):
            assert await received(stream, 3) == before + after


async def test_the_listen_connection_comes_back_after_postgres_drops_it(feed_settings, writer) -> None:
    async with serving(feed_settings) as client, open_stream(client) as stream:
        first = await writer.commit(2)
        assert await received(stream, 2) == first
        killed = await writer.conn.fetchval(
            "select count(pg_terminate_backend(pid)) from pg_stat_activity where application_name = $1",
            f"warroom-feed:{feed_settings.postgres.schema_name}")
        assert killed == 1
        later = await writer.commit(3)
        assert await received(stream, 3) == later


async def test_resume_from_a_pruned_position_is_a_reset(feed_settings, writer) -> None:
    async with serving(feed_settings) as client:
        ids = await writer.commit(10)
        await writer.conn.execute(f"delete from {writer.schema}.changes where change_id <= $1", ids[5])
        async with open_stream(client, resume_after=ids[1]) as stream:
            assert (await stream.next()).event == "reset"
        async with open_stream(client, resume_after=ids[5]) as stream:
            assert await received(stream, 4) == ids[6:]


async def test_heartbeats_keep_an_idle_stream_alive(feed_settings, writer) -> None:
    async with serving(feed_settings) as client, open_stream(client) as stream:
        await wait_for_async(lambda: stream.comments >= 1, timeout=10, message="a heartbeat comment")


async def test_a_slow_client_is_dropped_and_nobody_else_waits(feed_settings, writer) -> None:
    async with serving(feed_settings) as client, open_stream(client) as fast:
        port = int(str(client.base_url).rsplit(":", 1)[1].rstrip("/"))
        slow = await _reader_that_never_reads(port, mint_token(feed_settings, "slow", ["viewer"]))
        try:
            await wait_for_async(lambda: _sse_clients(client, 2), timeout=10, message="both clients subscribed")
            got: list[int] = []
            dropped = False
            for _ in range(200):  # each round is a burst well below the queue bound
                ids = await writer.commit(10, padding=50_000)
                got += await received(fast, len(ids))
                assert got[-len(ids):] == ids
                if await _dropped(client) >= 1:
                    dropped = True
                    break
            assert dropped, "the slow client was never dropped"
            # The fast one goes on, unaffected.
            more = await writer.commit(5)
            assert await received(fast, 5) == more
        finally:
            slow.close()


async def _reader_that_never_reads(port: int, token: str) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
    request = (f"GET /v1/stream HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n"
               f"Authorization: Bearer {token}\r\n\r\n").encode()
    await asyncio.get_running_loop().sock_sendall(sock, request)
    return sock


async def _metric(client: httpx.AsyncClient, name: str) -> float:
    text = (await client.get("/metrics")).text
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return 0.0


async def _sse_clients(client: httpx.AsyncClient, count: int) -> bool:
    return await _metric(client, "warroom_sse_clients") >= count


async def _dropped(client: httpx.AsyncClient) -> float:
    return await _metric(client, "warroom_sse_clients_dropped_total")
