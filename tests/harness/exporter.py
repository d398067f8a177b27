"""A Prometheus exporter inside the test process, whose metrics the test sets."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, generate_latest


class Exporter:
    """Serves ``/metrics`` from its own registry on ``host:port``.

    ``healthy = False`` makes every scrape answer 503, to play a broken target.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.registry = CollectorRegistry()
        self.healthy = True
        self._metrics: dict[str, Gauge | Counter] = {}
        exporter = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
                if self.path.split("?")[0] != "/metrics":
                    self.send_error(404)
                elif not exporter.healthy:
                    self.send_error(503, "exporter set unhealthy by the test")
                else:
                    body = generate_latest(exporter.registry)
                    self.send_response(200)
                    self.send_header("Content-Type", CONTENT_TYPE_LATEST)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self._httpd = ThreadingHTTPServer((host, port), Handler)
        self._httpd.daemon_threads = True
        self.host, self.port = self._httpd.server_address[:2]
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="test-exporter",
                                        daemon=True)
        self._thread.start()

    @property
    def target(self) -> str:
        """``host:port`` as a Prometheus scrape target."""
        return f"{self.host}:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.target}/metrics"

    def gauge(self, name: str, documentation: str = "test gauge",
              labelnames: Sequence[str] = ()) -> Gauge:
        """The gauge called ``name``, created on first use."""
        return self._metric(Gauge, name, documentation, labelnames)

    def counter(self, name: str, documentation: str = "test counter",
                labelnames: Sequence[str] = ()) -> Counter:
        """The counter called ``name`` (exposed as ``name_total``), created on first use."""
        return self._metric(Counter, name, documentation, labelnames)

    def _metric(self, kind, name, documentation, labelnames):
        metric = self._metrics.get(name)
        if metric is None:
            metric = kind(name, documentation, labelnames=list(labelnames), registry=self.registry)
            self._metrics[name] = metric
        elif not isinstance(metric, kind):
            raise TypeError(f"metric {name!r} already exists as a {type(metric).__name__}")
        return metric

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)
