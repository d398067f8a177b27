"""A webhook receiver inside the test process: a real HTTP server that keeps what it is sent."""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass(frozen=True)
class Delivery:
    path: str
    headers: dict[str, str]
    body: Any
    raw: bytes = b""


class Receiver:
    """Answers every POST with 200 and records it (JSON bodies parsed) in `deliveries`.

    `answers` gives another status for a path (a receiver that is down answers 503);
    `delays` holds a path's answer that many seconds (a slow receiver). Both are kept.
    `in_flight()` counts requests received and not yet answered (a sender that dies
    then has sent a page it never learnt the answer to)."""

    def __init__(self, host: str = "127.0.0.1", answers: dict[str, int] | None = None,
                 delays: dict[str, float] | None = None) -> None:
        self.deliveries: list[Delivery] = []
        self._answering = 0
        self.answers, self.delays = dict(answers or {}), dict(delays or {})
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                try:
                    body: Any = json.loads(raw)
                except ValueError:
                    body = raw
                with receiver._lock:
                    receiver.deliveries.append(Delivery(self.path, dict(self.headers), body, raw))
                    receiver._answering += 1
                try:
                    receiver._stopping.wait(receiver.delays.get(self.path, 0))
                    self.send_response(receiver.answers.get(self.path, 200))
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                except OSError:
                    pass  # the sender is gone (killed): it never hears the answer
                finally:
                    with receiver._lock:
                        receiver._answering -= 1

            def log_message(self, format: str, *args: object) -> None:
                pass

        self._httpd = ThreadingHTTPServer((host, 0), Handler)
        self._httpd.daemon_threads = True
        self.host, self.port = self._httpd.server_address[:2]
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="test-receiver", daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def received(self) -> list[Delivery]:
        with self._lock:
            return list(self.deliveries)

    def in_flight(self) -> int:
        with self._lock:
            return self._answering

    def close(self) -> None:
        self._stopping.set()
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)
