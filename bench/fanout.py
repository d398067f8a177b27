"""SSE fan-out from one gateway process (SPEC §12: 10,000 clients, p99 ≤ 500 ms per
broadcast, ≤ 30 KiB per client).

A broadcast is one note added through the API: decided by the worker, applied and
committed by the projector, then sent by the gateway to every client. What is timed, per
broadcast: from the commit (seen by this benchmark's own LISTEN on the change feed's
channel; PostgreSQL delivers a NOTIFY when its transaction commits) to the moment the
last client has the message. One broadcast at a time: the next starts once every client
has the previous one. Memory per client: the gateway's RSS growth from before the
clients connect to after the last broadcast, divided by the clients connected.

Baseline, in the same run with the same load client and the same number of clients: a
bare sse-starlette app on uvicorn (one LISTEN connection, a bounded queue per client,
each message encoded once) broadcasting the same payload, triggered by a NOTIFY from this
benchmark and timed the same way.

The load client is `bench.harness.sse_clients` (raw asyncio sockets on uvloop) in
`--processes` processes; the open-file limit is raised to fit the clients.

    uv run python -m bench.fanout --kafka apache --clients 10000 --broadcasts 20

Prints one JSON object per line, the last one the row for `bench.report`.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable
from pathlib import Path

import asyncpg
import httpx

from bench.harness.broker import fresh_prefix
from bench.harness.cli import parser_for, run
from bench.harness.measure import CpuMeter, emit, emit_row, percentiles, rss_bytes
from bench.harness.servers import ROOT, free_port, raise_open_files, spawn
from bench.harness.stack import Stack, open_incidents, stop_process, wait_ready
from foundation.change_feed import channel as changes_channel
from projections.schema import quote_ident
from foundation.topics import ensure_topics

BARE = "bare sse-starlette broadcast"
BROADCAST_TIMEOUT_S = 30
NOTIFY_MAX = 7900  # PostgreSQL refuses NOTIFY payloads of 8000 bytes and more
SPARE_FILES = 1000


class Commits:
    """When each change id was committed on a channel, from this process's own LISTEN."""

    def __init__(self, dsn: str, channel: str) -> None:
        self.dsn, self.channel = dsn, channel
        self.at: dict[int, float] = {}
        self.latest = 0
        self._arrived = asyncio.Event()

    async def __aenter__(self) -> Commits:
        self._conn = await asyncpg.connect(self.dsn)
        await self._conn.add_listener(self.channel, self._notified)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self._conn.close()

    def _notified(self, _conn: object, _pid: int, _channel: str, payload: str) -> None:
        change = int(payload.split(" ", 1)[0])
        self.at[change] = time.monotonic()
        self.latest = max(self.latest, change)
        self._arrived.set()

    async def after(self, change: int, timeout: float) -> int:
        """The first change committed after `change`."""
        async with asyncio.timeout(timeout):
            while self.latest <= change:
                self._arrived.clear()
                await self._arrived.wait()
        return self.latest


class Clients:
    """`total` SSE connections to `path`, spread over `processes` load-client processes."""

    def __init__(self, port: int, path: str, token: str, total: int, processes: int, log: Path) -> None:
        self.shares = [total // processes + (1 if n < total % processes else 0) for n in range(processes)]
        self.argv = ["127.0.0.1", str(port), path, token]
        self.log = log
        self.procs: list[asyncio.subprocess.Process] = []
        self._connected: list[asyncio.Future] = []
        self._final: list[asyncio.Future] = []
        self._complete: dict[int, set[int]] = defaultdict(set)
        self._progress = asyncio.Event()

    async def start(self) -> dict[str, int]:
        """Open every connection; how many opened and failed."""
        loop = asyncio.get_running_loop()
        with self.log.open("ab") as errors:
            for share in self.shares:
                self.procs.append(await asyncio.create_subprocess_exec(
                    sys.executable, "-m", "bench.harness.sse_clients", *self.argv, str(share), cwd=ROOT,
                    stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=errors))
        self._connected = [loop.create_future() for _ in self.procs]
        self._final = [loop.create_future() for _ in self.procs]
        self._readers = [asyncio.create_task(self._read(n, p)) for n, p in enumerate(self.procs)]
        counts = await asyncio.gather(*self._connected)
        return {"connected": sum(c["connected"] for c in counts), "failed": sum(c["failed"] for c in counts)}

    async def _read(self, n: int, proc: asyncio.subprocess.Process) -> None:
        async for line in proc.stdout:
            said = json.loads(line)
            if "connected" in said:
                self._connected[n].set_result(said)
            elif "complete" in said:
                self._complete[said["complete"]].add(n)
                self._progress.set()
            elif "received" in said:
                self._final[n].set_result(said)
        for future in (self._connected[n], self._final[n]):
            if not future.done():
                future.set_exception(RuntimeError(f"load client {n} exited; see {self.log}"))

    @property
    def pids(self) -> dict[str, int]:
        return {f"load_client_{n}": p.pid for n, p in enumerate(self.procs)}

    async def complete(self, change: int, timeout: float) -> bool:
        """Until every connection has `change`; False if that took longer than `timeout`."""
        try:
            async with asyncio.timeout(timeout):
                while len(self._complete[change]) < len(self.procs):
                    self._progress.clear()
                    await self._progress.wait()
        except TimeoutError:
            return False
        return True

    async def end(self) -> dict:
        """Every process's tally: per message id, how many connections had it and when the last did."""
        for proc in self.procs:
            proc.stdin.write(b"end\n")
            await proc.stdin.drain()
        finals = await asyncio.gather(*self._final)
        received: dict[int, list[float]] = {}
        for final in finals:
            for change, (count, last) in final["received"].items():
                mine = received.setdefault(int(change), [0, 0.0])
                mine[0] += count
                mine[1] = max(mine[1], last)
        return {"received": received, "closed": sum(f["closed"] for f in finals),
                "client_cpu_s": round(sum(f["cpu_s"] for f in finals), 2)}

    async def stop(self) -> None:
        for proc in self.procs:
            if proc.returncode is None:
                proc.kill()
            await proc.wait()


async def broadcasts(server_pid: int, port: int, path: str, token: str, trigger: Callable[[int], Awaitable[None]],
                     commits: Commits, args, log: Path) -> dict:
    """Connect the clients, broadcast `args.broadcasts` times one after another, and measure."""
    rss_before = rss_bytes(server_pid)
    clients = Clients(port, path, token, args.clients, args.processes, log)
    try:
        opened = await clients.start()
        rss_connected = rss_bytes(server_pid)
        cpu = CpuMeter({}, {"server": server_pid} | clients.pids)
        changes, late = [], 0
        for n in range(args.broadcasts):
            sending = asyncio.create_task(trigger(n))
            changes.append(await commits.after(commits.latest, BROADCAST_TIMEOUT_S))
            late += not await clients.complete(changes[-1], BROADCAST_TIMEOUT_S)
            await sending
        cores = cpu.cores()
        rss_after = rss_bytes(server_pid)
        tally = await clients.end()
    finally:
        await clients.stop()
    received = tally["received"]
    latencies = [received[c][1] - commits.at[c] for c in changes if c in received]
    expected = opened["connected"] * len(changes)
    return {"clients": opened["connected"], "failed": opened["failed"], "broadcasts": len(changes), "late": late, "closed": tally["closed"],
            "delivered": round(sum(received.get(c, [0])[0] for c in changes) / expected, 4) if expected else 0.0,
            **percentiles(latencies),
            "rss_before_mib": round(rss_before / 2**20, 1), "rss_connected_mib": round(rss_connected / 2**20, 1),
            "rss_after_mib": round(rss_after / 2**20, 1),
            "kib_per_client": round((rss_after - rss_before) / 1024 / max(opened["connected"], 1), 2),
            "cpu_cores": cores, "client_cpu_s": tally["client_cpu_s"]}


async def warroom_run(found, work: Path, args) -> tuple[dict, str]:
    """The gateway's fan-out; also the payload of its last change, for the baseline to send."""
    with Stack(found.bootstrap, found.dsn, work) as stack:
        await ensure_topics(stack.settings)
        stack.start("worker", "projector", "gateway")
        schema = stack.settings.postgres.schema_name
        headers = {"Authorization": f"Bearer {stack.token('responder')}"}
        async with httpx.AsyncClient(base_url=stack.base_url, timeout=60, headers=headers) as client:
            await wait_ready(client, stack.check)
            [incident] = await open_incidents(client, 1, stack.check)

            async def add_note(n: int) -> None:
                response = await client.post(f"/v1/incidents/{incident}/notes", json={"text": f"broadcast {n}"})
                if response.status_code >= 300:
                    raise RuntimeError(f"note {n}: {response.status_code} {response.text[:300]}")

            async with Commits(found.dsn, changes_channel(schema)) as commits:
                result = await broadcasts(stack.pids["gateway"], int(stack.base_url.rsplit(":", 1)[1]), "/v1/stream",
                                          stack.token("viewer"), add_note, commits, args, work / "load-clients.log")
            metrics = (await client.get("/metrics")).text
            result["gateway_dropped_clients"] = sum(
                float(line.rsplit(" ", 1)[1]) for line in metrics.splitlines()
                if line.startswith("warroom_sse_clients_dropped_total"))
        conn = await asyncpg.connect(found.dsn)
        try:
            payload = await conn.fetchval(
                f"select payload::text from {quote_ident(schema)}.changes order by change_id desc limit 1")
        finally:
            await conn.close()
    return result, payload


async def bare_run(found, work: Path, args, payload: str) -> dict:
    """The same clients and broadcasts on a bare sse-starlette app (see `serve_bare`)."""
    channel, port = fresh_prefix("bare"), free_port()
    process = spawn("bare", [sys.executable, "-m", "bench.fanout", "--serve", str(port), found.dsn, channel,
                             str(args.heartbeat_s)], work / "bare.log", cwd=ROOT)

    def check() -> None:
        if process.poll() is not None:
            raise RuntimeError(f"the bare app exited; see {work / 'bare.log'}")

    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
            await wait_ready(client, check)
        conn = await asyncpg.connect(found.dsn)
        try:
            async def notify(n: int) -> None:
                await conn.execute("select pg_notify($1, $2)", channel, f"{n + 1} {payload}")

            async with Commits(found.dsn, channel) as commits:
                return await broadcasts(process.pid, port, "/stream", "none", notify, commits, args,
                                        work / "load-clients-bare.log")
        finally:
            await conn.close()
    finally:
        stop_process(process)


def serve_bare(port: int, dsn: str, channel: str, heartbeat_s: float) -> None:
    """A bare sse-starlette broadcaster: `NOTIFY channel, '<id> <data>'` goes to every client."""
    import uvicorn
    from sse_starlette import EventSourceResponse
    from starlette.applications import Starlette
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    queue_size = 1000  # as the gateway's default sse.client_queue
    subscribers: set[asyncio.Queue] = set()

    def notified(_conn: object, _pid: int, _channel: str, payload: str) -> None:
        change, data = payload.split(" ", 1)
        frame = f"id: {change}\r\ndata: {data}\r\n\r\n".encode()  # encoded once for every client
        for queue in list(subscribers):
            try:
                queue.put_nowait(frame)
            except asyncio.QueueFull:  # too slow: dropped, as the gateway drops it
                subscribers.discard(queue)

    async def lifespan(app):
        conn = await asyncpg.connect(dsn)
        await conn.add_listener(channel, notified)
        yield
        await conn.close()

    async def stream(request):
        queue: asyncio.Queue = asyncio.Queue(queue_size)
        subscribers.add(queue)

        async def frames():
            try:
                while True:
                    yield await queue.get()
            finally:
                subscribers.discard(queue)

        return EventSourceResponse(frames(), ping=heartbeat_s, send_timeout=30)

    async def ready(request):
        return PlainTextResponse("ok")

    app = Starlette(routes=[Route("/stream", stream), Route("/readyz", ready)], lifespan=lifespan)
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


async def main(args, found, work, load) -> None:
    limit = raise_open_files(args.clients + SPARE_FILES)
    warroom, payload = await warroom_run(found, work, args)
    emit(bench="fanout.warroom", open_files_limit=limit, **warroom)
    if len(payload.encode()) > NOTIFY_MAX:
        raise RuntimeError(f"the change payload ({len(payload.encode())} bytes) does not fit a NOTIFY")
    bare = await bare_run(found, work, args, payload)
    emit(bench="fanout.bare_sse_starlette", payload_bytes=len(payload.encode()), **bare)
    measured = ("clients", "p50_ms", "p99_ms", "kib_per_client")
    emit_row("fanout", load, {**{k: warroom[k] for k in measured}, "delivered": warroom["delivered"]},
             {BARE: {k: bare[k] for k in measured}},
             kafka=found.kafka, clients_asked=args.clients, broadcasts=args.broadcasts,
             load_client_processes=args.processes, payload_bytes=len(payload.encode()),
             late_broadcasts=warroom["late"], closed_clients=warroom["closed"],
             gateway_dropped_clients=warroom["gateway_dropped_clients"], cpu_cores=warroom["cpu_cores"],
             baseline_delivered=bare["delivered"])


if __name__ == "__main__":
    if sys.argv[1:2] == ["--serve"]:
        serve_bare(int(sys.argv[2]), sys.argv[3], sys.argv[4], float(sys.argv[5]))
        sys.exit(0)
    parser = parser_for(__doc__, postgres=True)
    parser.add_argument("--clients", type=int, default=10_000)
    parser.add_argument("--broadcasts", type=int, default=20)
    parser.add_argument("--processes", type=int, default=2, help="load-client processes")
    parser.add_argument("--heartbeat-s", type=float, default=15, help="the bare app's ping (as sse.heartbeat_s)")
    run(main, parser.parse_args(), postgres=True)
