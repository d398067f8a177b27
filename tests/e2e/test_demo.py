"""`warroom up --demo` on a fresh data directory, as a newcomer runs it: the scheduled first
fault fires real alerts through Prometheus and Alertmanager, an incident opens by itself
within two minutes of ready and is correlated against the demo's Prometheus, `warroom
doctor --data-dir` finds it all, `warroom demo fault --kind clear` leads to mitigated, and
SIGTERM leaves no process behind. Without the Debian binaries it says how to get them and
runs the rest.

Which service correlation names first depends on the cross-service ranking; here only
that a run completes with findings about the faulty service's own signals."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from harness.processes import alive
from harness.servers import server_unavailable
from harness.waiting import wait_for
from warroom.demo.faults import Schedule
from warroom.servers import ServerUnavailable, free_port
from warroom.servers.prometheus import alertmanager_binary, prometheus_binary

ROOT = Path(__file__).resolve().parents[2]
OPENS_WITHIN_S = 120

pytestmark = pytest.mark.timeout(600)


@dataclass
class Up:
    port: int
    data_dir: Path
    log_path: Path
    env: dict[str, str]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def output(self) -> str:
        return self.log_path.read_text()

    def children(self) -> dict[str, int]:
        """Every process `warroom up` started, from stack.json and demo.json."""
        found: dict[str, int] = {}
        for name in ("stack.json", "demo.json"):
            path = self.data_dir / name
            if path.is_file():
                found |= json.loads(path.read_text())["children"]
        return found

    def cli(self, *argv: str) -> subprocess.CompletedProcess[str]:
        """`warroom ARGV --data-dir` of this run, as a second shell would run it."""
        return subprocess.run([sys.executable, "-m", "warroom", *argv, "--data-dir", str(self.data_dir)],
                              cwd=ROOT, env=self.env, capture_output=True, text=True, timeout=120)


@contextmanager
def warroom_up(tmp_path: Path, *flags: str, **env: str) -> Iterator[Up]:
    """`warroom up FLAGS` on a fresh data directory until the block ends; then SIGTERM, a
    clean exit, and none of the processes it started left running."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("WARROOM_")} | env
    run = Up(free_port(), tmp_path / "data", tmp_path / "up.log", clean)
    proc = subprocess.Popen(
        [sys.executable, "-m", "warroom", "up", *flags, "--port", str(run.port), "--data-dir", str(run.data_dir)],
        cwd=ROOT, env=clean, stdout=open(run.log_path, "w"), stderr=subprocess.STDOUT, text=True)
    try:
        yield run
    except BaseException:
        print(run.output()[-5000:])
        raise
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=90)
    assert code == 0, run.output()[-3000:]
    assert "warroom: stopped" in run.output()
    leftover = [name for name, pid in run.children().items() if pid and alive(pid)]
    assert leftover == [], f"still running after SIGTERM: {leftover}"


def test_up_demo_opens_an_incident_by_itself_and_clear_mitigates_it(tmp_path: Path) -> None:
    for find in (prometheus_binary, alertmanager_binary):
        try:
            find()
        except ServerUnavailable as err:
            server_unavailable("the demo's Prometheus and Alertmanager", err)
    with warroom_up(tmp_path, "--demo") as up:
        wait_for(lambda: "ready in" in up.output(), timeout=120, message="warroom up printing 'ready'")
        ready = time.monotonic()
        wait_for(lambda: "Ctrl-C stops everything" in up.output(), timeout=60,
                 message="the demo started after the core stack")
        output = up.output()
        assert "demo: Prometheus http://127.0.0.1:" in output and "demo: Alertmanager http://127.0.0.1:" in output
        assert set(json.loads((up.data_dir / "demo.json").read_text())["children"]) == {
            "demo-shop", "prometheus", "alertmanager"}
        token = output.split("token (admin, 12h) ")[1].split()[0]
        client = httpx.Client(base_url=up.url, headers={"Authorization": f"Bearer {token}"}, timeout=15)

        first = Schedule(0).next  # the default schedule's first fault, on a leaf
        service = first.service

        def incident_on_the_faulty_service() -> dict | None:
            items = client.get("/v1/incidents", params={"service": service}).json()["items"]
            return items[-1] if items else None

        incident = wait_for(incident_on_the_faulty_service, timeout=OPENS_WITHIN_S - (time.monotonic() - ready),
                            interval=1, message=f"an incident on {service} ({first.kind}) opening by itself")
        opened_after_s = time.monotonic() - ready
        assert incident["opened_by"] == {"kind": "producer", "id": "alertmanager"}
        assert incident["labels"]["alertname"] in ("HighErrorRate", "HighLatency", "CrashLooping")

        def correlated() -> dict | None:
            runs = client.get(f"/v1/incidents/{incident['id']}/correlation").json()
            done = [r for r in runs if r.get("completed_at")]
            return done[0] if done else None

        run = wait_for(correlated, timeout=90, interval=1, message="the correlation run started on opening")
        sources = {s["source"]: s["state"] for s in run["sources"]}
        assert sources["prometheus"] == "succeeded", run
        findings = client.get(f"/v1/incidents/{incident['id']}/findings").json()
        assert findings, "correlation against the demo's Prometheus found nothing"
        assert all(f.get("service", service) == service for f in findings if f["source"] == "prometheus")
        assert {f["kind"] for f in findings} & {"error_rate", "errors", "restarts", "deploys"}, findings

        doctor = up.cli("doctor", "--service", service)
        assert doctor.returncode == 0, doctor.stdout + doctor.stderr
        assert "source prometheus: succeeded" in doctor.stdout

        cleared = up.cli("demo", "fault", "--service", service, "--kind", "clear")
        assert cleared.returncode == 0, cleared.stderr
        assert json.loads(cleared.stdout)["fault"] is None
        mitigated = wait_for(
            lambda: (got := client.get(f"/v1/incidents/{incident['id']}").json())["status"] == "mitigated" and got,
            timeout=180, interval=1, message=f"the incident on {service} mitigated once its alerts resolve")
        print(f"incident on {service} opened {opened_after_s:.0f}s after ready; "
              f"mitigated {mitigated['durations']['time_to_mitigate_s']:.0f}s after opening")


def test_up_demo_without_prometheus_says_how_to_get_it_and_runs_the_rest(tmp_path: Path) -> None:
    missing = str(tmp_path / "none")
    with warroom_up(tmp_path, "--demo", "--demo-faults", "off",
                    WARROOM_PROMETHEUS_BIN=missing, WARROOM_ALERTMANAGER_BIN=missing) as up:
        wait_for(lambda: "Ctrl-C stops everything" in up.output(), timeout=120, message="warroom up --demo ready")
        output = up.output()
        assert "get them with: apt-get install prometheus prometheus-alertmanager (or run `scripts/dev up` as root" \
            in output
        assert "faults only by hand (--demo-faults off)" in output
        demo = json.loads((up.data_dir / "demo.json").read_text())
        assert set(demo["children"]) == {"demo-shop"} and "prometheus" not in demo
        assert httpx.get(f"{demo['shop']}/metrics", timeout=10).status_code == 200
        assert httpx.get(f"{up.url}/readyz", timeout=10).status_code == 200
        state = httpx.get(f"{demo['shop']}/faults", timeout=10).json()
        assert state["next_scheduled"] is None
        assert all(s["fault"] is None for s in state["services"].values())
