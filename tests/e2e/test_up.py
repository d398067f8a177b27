"""`warroom up` on the embedded default: ready, serving, and stopped without orphans."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from harness.processes import alive
from harness.waiting import wait_for
from warroom.servers import free_port

ROOT = Path(__file__).resolve().parents[2]


def test_up_serves_and_stops_cleanly(tmp_path: Path) -> None:
    port = free_port()
    data_dir = tmp_path / "data"
    env = {k: v for k, v in os.environ.items() if not k.startswith("WARROOM_")}
    log = open(tmp_path / "up.log", "w+")
    proc = subprocess.Popen(
        [sys.executable, "-m", "warroom", "up", "--port", str(port), "--data-dir", str(data_dir)],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, text=True,
    )
    try:
        started = time.monotonic()
        wait_for(lambda: "ready in" in (tmp_path / "up.log").read_text(), timeout=60,
                 message="warroom up printing 'ready'")
        ready_s = time.monotonic() - started
        output = (tmp_path / "up.log").read_text()
        assert f"http://127.0.0.1:{port}/" in output
        token = output.split("token (admin, 12h) ")[1].split()[0]
        url = f"http://127.0.0.1:{port}"
        assert httpx.get(f"{url}/readyz", timeout=5).status_code == 200
        assert ready_s < 30, f"ready after {ready_s:.1f}s"

        # The whole path works: a command is decided, projected and readable.
        headers = {"Authorization": f"Bearer {token}"}
        created = httpx.post(f"{url}/v1/incidents", headers=headers, timeout=15,
                             json={"title": "Checkout 5xx", "service": "checkout", "severity": "high"})
        assert created.status_code == 201, created.text
        incident = created.json()
        got = httpx.get(f"{url}/v1/incidents/{incident['id']}", params={"min_version": 1},
                        headers=headers, timeout=15)
        assert got.status_code == 200 and got.json()["title"] == "Checkout 5xx"

        # `warroom token --data-dir` uses the secret `up` generated.
        minted = subprocess.run(
            [sys.executable, "-m", "warroom", "token", "--role", "viewer", "--sub", "bob", "--data-dir", str(data_dir)],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=60,
        )
        assert minted.returncode == 0, minted.stderr
        assert httpx.get(f"{url}/v1/incidents", headers={"Authorization": f"Bearer {minted.stdout.strip()}"},
                         timeout=10).status_code == 200

        children = json.loads((data_dir / "stack.json").read_text())["children"]
        assert set(children) == {"tansu", "postgres", "projector", "worker", "gateway"}
    except BaseException:
        print((tmp_path / "up.log").read_text()[-5000:])
        raise
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=60)
    assert code == 0, (tmp_path / "up.log").read_text()[-3000:]
    assert "warroom: stopped" in (tmp_path / "up.log").read_text()
    leftover = [name for name, pid in children.items() if alive(pid)]
    assert leftover == [], f"still running after SIGTERM: {leftover}"
