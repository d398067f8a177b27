"""Warroom's own processes for a benchmark: worker, projector and gateway as they are
deployed (`python -m warroom <what>`), a benchmark module's own role processes, and a
Faust worker around the agents a role installs."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx

from bench.harness.broker import bench_settings, fresh_prefix
from bench.harness.servers import ROOT, Server, free_port, log_tail, spawn
from foundation.event_loop import new_event_loop
from foundation.settings import Settings
from gateway.auth import mint_token

SECRET = "bench-secret-" + "z" * 32
READY_TIMEOUT_S = 120


class Stack:
    """Worker, projector and gateway on one broker and database, a prefix and schema of their own."""

    def __init__(self, bootstrap: str, dsn: str, work: Path, partitions: int = 6, **env: str) -> None:
        prefix = fresh_prefix("stack")
        port = free_port()
        self.settings = bench_settings(bootstrap, prefix, postgres={"dsn": dsn, "schema_name": prefix},
                                       topics={"partitions": partitions}, auth={"jwt_secret": SECRET})
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("WARROOM_")}
        self.env.update({
            "PYTHONUNBUFFERED": "1", "WARROOM_LOG_LEVEL": "warning",
            "WARROOM_KAFKA__BOOTSTRAP": bootstrap, "WARROOM_POSTGRES__DSN": dsn,
            "WARROOM_POSTGRES__SCHEMA_NAME": prefix, "WARROOM_TOPICS__PREFIX": prefix,
            "WARROOM_TOPICS__PARTITIONS": str(partitions), "WARROOM_JWT_SECRET": SECRET,
            "WARROOM_DATA_DIR": str(work), "WARROOM_GATEWAY__PORT": str(port),
            "WARROOM_WORKER__WEB_PORT": str(free_port()), "WARROOM_PROJECTOR__GROUP_ID": f"{prefix}-projector",
            # Only the command path is measured: no correlation sources to call.
            "WARROOM_CORRELATION__SOURCES": "[]",
            **env,
        })
        self.work = work
        self.base_url = f"http://127.0.0.1:{port}"
        self.servers: list[Server] = []

    def start(self, *what: str) -> None:
        for name in what:
            log = self.work / f"{name}.log"
            process = spawn(name, [sys.executable, "-m", "warroom", name], log, env=self.env, cwd=ROOT)
            self.servers.append(Server(name=name, process=process, host="127.0.0.1", port=0,
                                       data_dir=self.work, log_path=log))

    @property
    def pids(self) -> dict[str, int]:
        return {server.name: server.pid for server in self.servers}

    def token(self, *roles: str) -> str:
        return mint_token(self.settings, "bench", list(roles))

    def check(self) -> None:
        """Raise with its log if any process has exited."""
        for server in self.servers:
            if not server.alive():
                raise RuntimeError(f"{server.name} exited:\n{log_tail(server.log_path)}")

    def stop(self) -> None:
        for server in reversed(self.servers):
            server.stop(timeout=10)
        self.servers.clear()

    def __enter__(self) -> Stack:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


async def wait_ready(client: httpx.AsyncClient, check=lambda: None, timeout: float = READY_TIMEOUT_S) -> None:
    """Until the gateway behind `client` answers /readyz with 200; `check` raises if a process died."""
    deadline = time.monotonic() + timeout
    last = "no answer"
    while True:
        check()
        try:
            response = await client.get("/readyz")
            if response.status_code == 200:
                return
            last = f"{response.status_code} {response.text[:200]}"
        except httpx.HTTPError as err:
            last = repr(err)
        if time.monotonic() > deadline:
            raise RuntimeError(f"gateway not ready after {timeout:.0f}s: {last}")
        await asyncio.sleep(0.2)


async def open_incidents(client: httpx.AsyncClient, count: int, check=lambda: None,
                         timeout: float = READY_TIMEOUT_S) -> list[str]:
    """`count` incidents, each answered 201 and read back (so every process has warmed up).

    Retried until then: right after start the worker may not have joined its group yet."""
    ids: list[str] = []
    deadline = time.monotonic() + timeout
    while len(ids) < count:
        check()
        response = await client.post("/v1/incidents", headers={"Idempotency-Key": f"bench-{len(ids)}"},
                                     json={"title": f"bench {len(ids)}", "service": "bench", "severity": "low"})
        if response.status_code == 201:
            ids.append(response.json()["id"])
        elif time.monotonic() > deadline:
            raise RuntimeError(f"cannot open incidents: {response.status_code} {response.text[:300]}")
    for incident in ids:
        await client.get(f"/v1/incidents/{incident}", params={"min_version": 1})
    return ids


def role_process(module: str, role: str, args: list[str], settings: Settings, log: Path,
                 profile: Path | None = None) -> subprocess.Popen:
    """`python -m <module> --serve <role> <args>` with `settings` in its environment (and
    a cProfile of its main thread in `profile/<role>.prof` when asked)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("WARROOM_")}
    env.update({"WARROOM_KAFKA__BOOTSTRAP": settings.kafka.bootstrap, "WARROOM_TOPICS__PREFIX": settings.topics.prefix,
                "WARROOM_DATA_DIR": str(settings.data_dir), "WARROOM_LOG_LEVEL": "warning"})
    profiling = ["-m", "cProfile", "-o", str(profile / f"{role}.prof")] if profile else []
    return spawn(role, [sys.executable, *profiling, "-m", module, "--serve", role, *args], log, env=env, cwd=ROOT)


def stop_process(process: subprocess.Popen, timeout: float = 60) -> None:
    """SIGTERM (a Faust worker shuts down cleanly on it) and reap."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def faust_streams(settings: Settings):
    """Warroom's Faust app declared for `settings`, on a fresh event loop: (streams, loop)."""
    from streams.app import create_app

    (settings.data_dir / "faust").mkdir(parents=True, exist_ok=True)
    loop = new_event_loop()  # the loop streams.worker.run uses
    return create_app(settings), loop


def install_passthrough(streams, source: str, sink: str) -> None:
    """A Faust agent forwarding every record of `source` unchanged to `sink` (same
    partition), in batches with manual acks: what Faust's stream machinery alone costs."""
    topic = streams.app.topic(source, key_type=bytes, value_type=bytes, key_serializer="raw",
                              value_serializer="raw")

    @streams.app.agent(topic, name="passthrough")
    async def passthrough(stream) -> None:
        producer = await streams.app.maybe_start_producer()  # once: it yields to the loop per call
        async for batch in stream.noack_take(1000, within=0.005):
            acks = [await producer.send(sink, e.message.key, e.message.value, e.message.partition, None, None)
                    for e in batch]
            await asyncio.gather(*acks)
            for e in batch:
                await stream.ack(e)


def run_faust(streams, loop) -> None:
    """Run a Faust worker for the agents installed on `streams` until SIGTERM."""
    import faust

    worker = faust.Worker(streams.app, loop=loop, loglevel="WARNING")
    worker.spinner = None  # as streams.worker.run does: no DEBUG root logger
    worker.execute_from_commandline()
