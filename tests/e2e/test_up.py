"""`warroom up` on the embedded default: ready, serving, stopped without orphans, and
keeping its own broker and database running."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import jwt
import pytest

from harness.processes import alive
from harness.waiting import wait_for, wait_for_async
from sse_client import open_stream
from warroom.servers import free_port

ROOT = Path(__file__).resolve().parents[2]


def _zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(")")[-1].split()[0] == "Z"
    except FileNotFoundError:
        return False


@dataclass
class Up:
    proc: subprocess.Popen
    url: str
    token: str
    data_dir: Path
    log_path: Path
    env: dict[str, str]
    config: Path

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def output(self) -> str:
        return self.log_path.read_text()

    def children(self) -> dict[str, int]:
        return json.loads((self.data_dir / "stack.json").read_text())["children"]


ISSUER = "warroom-up-under-test"


@pytest.fixture
def up(tmp_path: Path, pg_dir: Path) -> Iterator[Up]:
    port = free_port()
    data_dir = pg_dir  # it holds PostgreSQL's data: kept outside pytest's temporary root
    env = {k: v for k, v in os.environ.items() if not k.startswith("WARROOM_")}
    log_path = tmp_path / "up.log"
    log = open(log_path, "w+")
    config = tmp_path / "warroom.toml"
    config.write_text(f'[auth]\nissuer = "{ISSUER}"\n')
    proc = subprocess.Popen(
        [sys.executable, "-m", "warroom", "up", "--port", str(port), "--data-dir", str(data_dir),
         "--config", str(config)],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, text=True,
    )
    running = Up(proc, f"http://127.0.0.1:{port}", "", data_dir, log_path, env, config)
    try:
        wait_for(lambda: "ready in" in running.output(), timeout=90, message="warroom up printing 'ready'")
        running.token = running.output().split("token (admin, 12h) ")[1].split()[0]
        yield running
    except BaseException:
        print(running.output()[-5000:])
        raise
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=60)


def test_up_serves_and_stops_cleanly(up: Up) -> None:
    output = up.output()
    assert f"{up.url}/" in output
    assert httpx.get(f"{up.url}/readyz", timeout=5).status_code == 200
    # `up --config FILE` read the file: the token it printed names the issuer set there.
    assert jwt.decode(up.token, options={"verify_signature": False})["iss"] == ISSUER

    # `doctor --config F --data-dir D` checks the stack running there, not the defaults.
    doctor = subprocess.run(
        [sys.executable, "-m", "warroom", "doctor", "--json", "--config", str(up.config),
         "--data-dir", str(up.data_dir)], cwd=ROOT, env=up.env, capture_output=True, text=True, timeout=120)
    checks = {check["name"]: check for check in json.loads(doctor.stdout)["checks"]}
    assert checks["kafka"]["ok"] and checks["postgres"]["ok"], doctor.stdout
    assert up.children()["tansu"] and str(json.loads((up.data_dir / "stack.json").read_text())["kafka"]) in \
        checks["kafka"]["detail"]

    # The whole path works: a command is decided, projected and readable.
    created = httpx.post(f"{up.url}/v1/incidents", headers=up.headers, timeout=15,
                         json={"title": "Checkout 5xx", "service": "checkout", "severity": "high"})
    assert created.status_code == 201, created.text
    got = httpx.get(f"{up.url}{created.headers['location']}", headers=up.headers, timeout=15)
    assert got.status_code == 200 and got.json()["title"] == "Checkout 5xx"

    # `warroom token --data-dir` uses the secret `up` generated.
    minted = subprocess.run(
        [sys.executable, "-m", "warroom", "token", "--role", "viewer", "--sub", "bob", "--data-dir", str(up.data_dir),
         "--config", str(up.config)],
        cwd=ROOT, env=up.env, capture_output=True, text=True, timeout=60,
    )
    assert minted.returncode == 0, minted.stderr
    listed = httpx.get(f"{up.url}/v1/incidents", headers={"Authorization": f"Bearer {minted.stdout.strip()}"},
                       timeout=10)
    assert listed.status_code == 200, listed.text

    children = up.children()
    assert set(children) == {"tansu", "postgres", "projector", "worker", "notifier", "gateway"}
    up.proc.send_signal(signal.SIGTERM)
    assert up.proc.wait(timeout=60) == 0, up.output()[-3000:]
    assert "warroom: stopped" in up.output()
    leftover = [name for name, pid in children.items() if alive(pid)]
    assert leftover == [], f"still running after SIGTERM: {leftover}"


async def _restarted(up: Up, name: str, old_pid: int) -> int:
    """Wait until `warroom up` runs `name` again under another pid; the old one reaped."""
    new_pid = await wait_for_async(lambda: (pid := up.children()[name]) != old_pid and alive(pid) and pid,
                                   timeout=120, interval=0.2, message=f"{name} started again")
    assert not _zombie(old_pid), f"{name} {old_pid} left a zombie"
    return new_pid


async def test_up_restarts_its_broker_and_database_and_the_stack_heals(up: Up) -> None:
    service = f"svc-{uuid.uuid4().hex[:8]}"
    async with httpx.AsyncClient(base_url=up.url, headers=up.headers, timeout=30) as client, \
            open_stream(client, service=service) as stream:
        before = await client.post("/v1/incidents", json={"title": "before", "service": service, "severity": "low"})
        assert before.status_code == 201, before.text
        assert (await stream.next()).event == "IncidentOpened"

        # The memory-only broker dies, and comes back empty.
        tansu = up.children()["tansu"]
        os.kill(tansu, signal.SIGKILL)
        await _restarted(up, "tansu", tansu)
        reset = await stream.until(lambda m: m.event == "reset", timeout=120)
        assert "went back" in reset[-1].json["reason"]

        async def opened(key: str) -> httpx.Response | None:
            answer = await client.post("/v1/incidents", headers={"Idempotency-Key": key},
                                       json={"title": "after", "service": service, "severity": "high"})
            return answer if answer.status_code == 201 and "warroom-read-model" not in answer.headers else None

        after = (await wait_for_async(lambda: opened(f"after-{service}"), timeout=180, interval=0.5,
                                      message="a command decided and readable after the broker restart")).json()
        # Nothing of the log that is gone is mixed with the new one.
        assert (await client.get(f"/v1/incidents/{before.json()['id']}")).status_code == 404
        events = (await client.get(f"/v1/incidents/{after['id']}/events")).json()
        assert [(e["incident_id"], e["version"]) for e in events] == [(after["id"], 1)]
        assert (await client.get("/v1/incidents", params={"service": service})).json()["items"][0]["id"] == after["id"]

        # PostgreSQL dies: started again on its data, and everything reconnects.
        postgres = up.children()["postgres"]
        os.kill(postgres, signal.SIGKILL)
        await _restarted(up, "postgres", postgres)

        async def noted() -> httpx.Response | None:
            answer = await client.post(f"/v1/incidents/{after['id']}/notes", json={"text": "after postgres"})
            return answer if answer.status_code == 201 else None

        note = await wait_for_async(noted, timeout=120, interval=0.5, message="a note taken after PostgreSQL came back")
        got = await client.get(f"/v1/incidents/{after['id']}")
        assert got.status_code == 200 and got.json()["version"] >= note.json()["version"]
        assert (await client.get("/readyz")).status_code == 200
    assert f"tansu exited with -{signal.SIGKILL.value}" in up.output()
    assert "postgres serving again" in up.output()
