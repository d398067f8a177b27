"""`warroom demo shop`: the simulated shop as a process Prometheus scrapes.

- `GET /metrics`: the shop's metrics (see `exposition`).
- `GET /faults`: every service's version, start time, fault and whether it is up.
- `POST /faults` `{"service": S, "kind": K}`: inject a fault now; 200 with the state, 422
  (problem+json naming the field) for an unknown service or kind.
- `GET /healthz`: 200 once serving.

A thread moves the shop along in real time and carries out the fault schedule when it
is on. With a history file, the shop first lives through its last hour of normal traffic
and writes what Prometheus would have scraped to that file (`history`), then serves.
SIGTERM or SIGINT stops it.
"""

from __future__ import annotations

import json
import logging
import signal
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST

from warroom.demo import history
from warroom.demo.exposition import exposition, registry_for
from warroom.demo.faults import Schedule, UnknownFault, check, heal, inject
from warroom.demo.shop import Shop

log = logging.getLogger("warroom.demo")

TICK_S = 0.2
MAX_BODY = 4096
PROBLEM = "application/problem+json"


class LiveShop:
    """The shop on a clock, with its schedule (None: faults only by hand), safe to use
    from several threads. With `past_s`, the shop's processes started that long before
    now and its traffic up to now is still to be served (`write_past`); the schedule
    counts from now."""

    def __init__(self, *, seed: int = 0, scheduled: bool = True, clock: Callable[[], float] = time.time,
                 schedule: Schedule | None = None, past_s: float = 0.0) -> None:
        self.clock = clock
        now = self.started_at = clock()
        self.lock = threading.Lock()
        self.shop = Shop(now - past_s, seed=seed)
        self.schedule = schedule or (Schedule(now) if scheduled else None)
        self.registry = registry_for(self.shop, self.lock, clock, self._catch_up)

    def state(self) -> dict[str, Any]:
        """Every service's version, start time, fault and whether it is up; the next scheduled action."""
        with self.lock:
            now = self.clock()
            self._catch_up(now)
            return self._state(now)

    def _state(self, now: float) -> dict[str, Any]:
        services = {name: {"version": p.version, "started_at": p.started_at, "fault": p.fault,
                           "up": self.shop.up(name, now)}
                    for name, p in self.shop.processes.items()}
        upcoming = None
        if self.schedule is not None:
            step = self.schedule.next
            upcoming = {"service": step.service, "kind": step.kind, "in_s": round(max(step.at - now, 0), 1)}
        return {"services": services, "next_scheduled": upcoming}

    def fault(self, service: str, kind: str) -> dict[str, Any]:
        """Inject `kind` on `service` now, by hand, and return the state; UnknownFault for
        anything the shop does not have."""
        with self.lock:
            now = self.clock()
            check(self.shop, service, kind)
            self._catch_up(now)
            self._apply(service, kind, now, by="hand")
            if self.schedule is not None:
                self.schedule.noticed(service, kind, now)
            return self._state(now)

    def write_past(self, path: Path, labels: dict[str, str]) -> history.Backfilled:
        """Serve the traffic from the shop's start to `started_at`, writing each scrape of
        it to `path` as OpenMetrics (`history.write`)."""
        with self.lock:
            return history.write(self.shop, self.started_at, path, labels)

    def tick(self) -> None:
        """Move the shop to now."""
        with self.lock:
            self._catch_up(self.clock())

    def _catch_up(self, now: float) -> None:
        # Scheduled faults happen at their own moments, whoever looks first (a tick, a scrape).
        for action in self.schedule.due(now) if self.schedule is not None else ():
            self._apply(action.service, action.kind, action.at, by="schedule")
        self.shop.advance(now)

    def _apply(self, service: str, kind: str, at: float, by: str) -> None:
        if kind == "clear":
            heal(self.shop, service, at)
        else:
            inject(self.shop, service, kind, at)
        log.info("%s on %s (by %s)", kind, service, by)


class ShopServer:
    """A `LiveShop` served over HTTP, moved along in real time by a thread of its own."""

    def __init__(self, live: LiveShop, host: str = "127.0.0.1", port: int = 0) -> None:
        self.live = live
        self._stop = threading.Event()
        self._httpd = ThreadingHTTPServer((host, port), _handler(live))
        self._httpd.daemon_threads = True
        self.host, self.port = self._httpd.server_address[:2]
        self._threads: list[threading.Thread] = []

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def target(self) -> str:
        """``host:port`` as a Prometheus scrape target."""
        return f"{self.host}:{self.port}"

    def start(self) -> ShopServer:
        """Serve and tick in background threads; returns at once."""
        self._threads = [threading.Thread(target=self._httpd.serve_forever, name="demo-http", daemon=True),
                         threading.Thread(target=self._run, name="demo-tick", daemon=True)]
        for thread in self._threads:
            thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(TICK_S):
            try:
                self.live.tick()
            except Exception:  # one bad tick must not stop the traffic
                log.exception("demo shop tick failed")

    def close(self) -> None:
        self._stop.set()
        if self._threads:
            self._httpd.shutdown()
        self._httpd.server_close()
        for thread in self._threads:
            thread.join(timeout=5)


def _handler(live: LiveShop) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
            path = self.path.split("?")[0]
            if path == "/metrics":
                self._send(200, exposition(live.registry), CONTENT_TYPE_LATEST)
            elif path == "/faults":
                self._json(200, live.state())
            elif path == "/healthz":
                self._json(200, {"status": "ok"})
            else:
                self._problem(404, "not_found", f"no {path} here; try /metrics or /faults")

        def do_POST(self) -> None:  # noqa: N802
            if self.path.split("?")[0] != "/faults":
                self._problem(404, "not_found", f"no {self.path} here; POST /faults")
                return
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_BODY:
                self._problem(413, "too_large", f"a fault is a small JSON object (at most {MAX_BODY} bytes)")
                return
            try:
                body = json.loads(self.rfile.read(length) or b"null")
            except ValueError as err:
                self._problem(422, "validation_error", f"not valid JSON: {err}", field="body")
                return
            if not isinstance(body, dict):
                self._problem(422, "validation_error", 'expected {"service": ..., "kind": ...}', field="body")
                return
            for name in ("service", "kind"):
                if not isinstance(body.get(name), str):
                    self._problem(422, "validation_error", f"{name} is required (a string)", field=name)
                    return
            try:
                self._json(200, live.fault(body["service"], body["kind"]))
            except UnknownFault as err:
                self._problem(422, "validation_error", str(err), field=err.field)

        def _problem(self, status: int, code: str, detail: str, field: str | None = None) -> None:
            from gateway.problems import Problem

            extra = {"errors": [{"field": field, "message": detail}]} if field else {}
            self._send(status, json.dumps(Problem(status, code, detail, **extra).body()).encode(), PROBLEM)

        def _json(self, status: int, document: object) -> None:
            self._send(status, json.dumps(document).encode(), "application/json")

        def _send(self, status: int, body: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    return Handler


def serve(host: str, port: int, *, seed: int, scheduled: bool, history_file: Path | None = None) -> int:
    """Run the shop until SIGTERM or SIGINT; return the exit status. With `history_file`,
    its last `history.HISTORY_S` of normal traffic go there first, labelled as a scrape
    job `history.JOB` of this address would label them."""
    live = LiveShop(seed=seed, scheduled=scheduled, past_s=history.HISTORY_S if history_file else 0.0)
    server = ShopServer(live, host, port)
    if history_file is not None:
        began = time.monotonic()
        written = live.write_past(history_file, {"job": history.JOB, "instance": server.target})
        log.info("the last %.0f min of traffic (%d series, %d samples) written to %s in %.1fs",
                 history.HISTORY_S / 60, written.series, written.samples, history_file, time.monotonic() - began)
    server.start()
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    when = live.schedule.next if live.schedule is not None else None
    log.info("demo shop on %s/metrics; %s", server.url,
             f"first fault ({when.kind} on {when.service}) in {when.at - live.clock():.0f}s" if when
             else "faults only by hand")
    while not stop.wait(1.0):
        pass
    server.close()
    return 0
