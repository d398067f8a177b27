"""What the gateway exposes on /metrics (Prometheus text format).

Each app owns its registry, so several apps in one process (tests) never collide.
"""

from __future__ import annotations

import time

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send


class GatewayMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "warroom_http_requests_total", "HTTP requests answered",
            ["method", "route", "status"], registry=self.registry)
        self.latency = Histogram(
            "warroom_http_request_duration_seconds", "Time to answer an HTTP request (streams: to open)",
            ["method", "route"], registry=self.registry,
            buckets=(0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))
        self.commands = Counter(
            "warroom_commands_total", "Commands sent, by what became of them",
            ["type", "outcome"], registry=self.registry)
        self.command_latency = Histogram(
            "warroom_command_duration_seconds", "Command sent → outcome heard",
            ["type"], registry=self.registry,
            buckets=(0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5))
        self.read_model_behind = Counter(
            "warroom_read_model_behind_total",
            "Accepted commands answered before the read models showed them (Warroom-Read-Model: behind)",
            registry=self.registry)
        self.sse_clients = Gauge(
            "warroom_sse_clients", "Connected SSE clients", registry=self.registry)
        self.sse_dropped = Counter(
            "warroom_sse_clients_dropped_total", "SSE clients disconnected for a full queue",
            registry=self.registry)
        self.sse_messages = Counter(
            "warroom_sse_changes_total", "Changes read from the change feed", registry=self.registry)
        self.feed_reconnects = Counter(
            "warroom_change_feed_reconnects_total", "Times the change-feed LISTEN connection was re-made",
            registry=self.registry)


class MetricsMiddleware:
    """Counts and times every HTTP request by its route template (bounded label values)."""

    def __init__(self, app: ASGIApp, metrics: GatewayMetrics) -> None:
        self.app, self.metrics = app, metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                self._observe(scope, status, started)
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            route = scope.get("route")
            self.metrics.requests.labels(
                scope["method"], getattr(route, "path", "unmatched"), str(status)).inc()

    def _observe(self, scope: Scope, status: int, started: float) -> None:
        route = scope.get("route")
        self.metrics.latency.labels(scope["method"], getattr(route, "path", "unmatched")).observe(
            time.perf_counter() - started)
