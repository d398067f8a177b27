"""A running Warroom for end-to-end tests: worker, projector and gateway as real processes.

`start_stack` runs them against given Kafka and PostgreSQL servers on a topic prefix
and a schema of their own, and returns once a command has made it all the way through
(HTTP → decider → log → projector → read model).
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from gateway.auth import mint_token
from warroom.servers import free_port
from warroom.servers.process import Server, log_tail, spawn
from foundation.settings import Settings, load_settings

from harness.waiting import wait_for

REPO_ROOT = Path(__file__).resolve().parents[2]
SECRET = "e2e-secret-" + "x" * 32
START_TIMEOUT_S = 120


@dataclass
class Stack:
    """A running Warroom: `base_url` of its gateway, its settings and its processes."""

    base_url: str
    settings: Settings
    env: dict[str, str]
    log_dir: Path
    processes: dict[str, Server] = field(default_factory=dict)

    def token(self, *roles: str, sub: str = "e2e") -> str:
        return mint_token(self.settings, sub, roles or ("viewer",))

    def auth(self, *roles: str, sub: str = "e2e") -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(*roles, sub=sub)}"}

    def client(self, *roles: str, sub: str = "e2e", timeout: float = 30) -> httpx.AsyncClient:
        """An HTTP client for the gateway carrying a token with `roles`."""
        return httpx.AsyncClient(base_url=self.base_url, headers=self.auth(*roles, sub=sub), timeout=timeout)

    def start(self, name: str, *argv: str, env: dict[str, str] | None = None) -> Server:
        """Start (or restart) one process of the stack; `python -m warroom <argv>`."""
        old = self.processes.get(name)
        if old is not None:
            old.stop()
        process_env = {**self.env, **(env or {})}
        log_path = self.log_dir / f"{name}.log"
        popen = spawn(name, [sys.executable, "-m", "warroom", *argv], log_path, env=process_env, cwd=REPO_ROOT)
        port = int(process_env["WARROOM_GATEWAY__PORT"]) if argv[0] == "gateway" else 0
        server = Server(name=name, process=popen, host="127.0.0.1", port=port, data_dir=self.log_dir, log_path=log_path)
        self.processes[name] = server
        return server

    def check_alive(self) -> None:
        for server in self.processes.values():
            if not server.alive():
                raise AssertionError(f"{server.name} exited; last lines of {server.log_path}:\n{server.log_tail()}")

    def stop(self) -> None:
        for server in reversed(list(self.processes.values())):
            server.stop(timeout=10)

    def logs(self) -> str:
        return "\n".join(f"--- {s.name} ---\n{log_tail(s.log_path)}" for s in self.processes.values())


MAINTENANCE_WINDOW = {"name": "always-e2e", "matchers": [{"label": "service", "op": "=", "value": "maintained-e2e"}],
                      "start": "00:00", "duration_m": 1440, "comment": "every day, all day"}


def stack_env(kafka_bootstrap: str, postgres_dsn: str, prefix: str, schema: str, data_dir: Path,
              gateway_port: int, **extra: str) -> dict[str, str]:
    """The environment that points every Warroom process at these servers (WARROOM_*)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("WARROOM_")}
    env.update({
        "PYTHONUNBUFFERED": "1",
        "WARROOM_KAFKA__BOOTSTRAP": kafka_bootstrap,
        "WARROOM_POSTGRES__DSN": postgres_dsn,
        "WARROOM_POSTGRES__SCHEMA_NAME": schema,
        "WARROOM_TOPICS__PREFIX": prefix,
        "WARROOM_TOPICS__PARTITIONS": "3",
        "WARROOM_JWT_SECRET": SECRET,
        "WARROOM_DATA_DIR": str(data_dir),
        "WARROOM_GATEWAY__HOST": "127.0.0.1",
        "WARROOM_GATEWAY__PORT": str(gateway_port),
        "WARROOM_GATEWAY__COMMAND_TIMEOUT_S": "10",
        # Tests drive versions by hand; the automatic run on open would race them.
        "WARROOM_CORRELATION__ON_OPEN": "false",
        "WARROOM_WORKER__WEB_PORT": str(free_port()),
        "WARROOM_PROJECTOR__GROUP_ID": f"{prefix}-projector",
        # Always open, for one service no other test uses (tests/e2e/test_silences.py).
        "WARROOM_SILENCES__MAINTENANCE": json.dumps([MAINTENANCE_WINDOW]),
    })
    env.update(extra)
    return env


def start_stack(kafka_bootstrap: str, postgres_dsn: str, work_dir: Path, **extra_env: str) -> Stack:
    """Start worker, projector and gateway on a fresh prefix and schema; return once a
    command has gone all the way through. Stops whatever it started if that fails."""
    tag = uuid.uuid4().hex[:8]
    port = free_port()
    env = stack_env(kafka_bootstrap, postgres_dsn, f"e2e{tag}", f"e2e_{tag}", work_dir, port, **extra_env)
    settings = load_settings(
        kafka={"bootstrap": kafka_bootstrap},
        postgres={"dsn": postgres_dsn, "schema_name": env["WARROOM_POSTGRES__SCHEMA_NAME"]},
        topics={"prefix": env["WARROOM_TOPICS__PREFIX"], "partitions": 3},
        auth={"jwt_secret": SECRET},
    )
    asyncio.run(ensure_topics(settings))
    stack = Stack(base_url=f"http://127.0.0.1:{port}", settings=settings, env=env, log_dir=work_dir)
    try:
        stack.start("worker", "worker")
        stack.start("projector", "projector")
        stack.start("gateway", "gateway")
        wait_until_ready(stack)
        asyncio.run(_first_command_through(stack))
    except BaseException:
        logs = stack.logs()
        stack.stop()
        print(logs, file=sys.stderr)
        raise
    return stack


async def ensure_topics(settings: Settings) -> None:
    """Create the stack's topics (foundation.topics when present, else the admin client)."""
    try:
        from foundation.topics import ensure_topics as create
    except ImportError:  # pragma: no cover - older tree
        from aiokafka.admin import AIOKafkaAdminClient, NewTopic

        admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka.bootstrap)
        await admin.start()
        try:
            await admin.create_topics([
                NewTopic(settings.topics.name(kind), settings.topics.partitions, 1)
                for kind in ("alerts", "commands", "events", "dlq", "outcomes")])
        finally:
            await admin.close()
        return
    await create(settings)


def wait_until_ready(stack: Stack, timeout: float = START_TIMEOUT_S) -> None:
    def ready() -> bool:
        stack.check_alive()
        return httpx.get(f"{stack.base_url}/readyz", timeout=3).status_code == 200

    wait_for(ready, timeout=timeout, interval=0.2, message="gateway /readyz")


async def _first_command_through(stack: Stack) -> None:
    """Open an incident until it is accepted and visible in the read model: every process
    is then consuming (a worker still joining its group answers with 202 at first)."""
    deadline = time.monotonic() + START_TIMEOUT_S
    key = f"warm-up-{uuid.uuid4()}"
    async with stack.client("responder", sub="warm-up") as client:
        while True:
            stack.check_alive()
            response = await client.post("/v1/incidents", headers={"Idempotency-Key": key}, json={
                "title": "warm-up", "service": "warm-up", "severity": "low"})
            if response.status_code == 201:
                break
            assert response.status_code == 202, response.text
            assert time.monotonic() < deadline, "no command outcome from the worker in time"
        incident = response.json()["id"]
        response = await client.get(f"/v1/incidents/{incident}", params={"min_version": 1})
        while response.status_code == 404:
            stack.check_alive()
            assert time.monotonic() < deadline, "the projector did not build the read model in time"
            response = await client.get(f"/v1/incidents/{incident}", params={"min_version": 1})
        assert response.status_code == 200, response.text
