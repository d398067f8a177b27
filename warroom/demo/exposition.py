"""The shop's state as Prometheus metrics, through prometheus-client.

Per service (label `service`): `http_requests_total{status}`, the
`http_request_duration_seconds` histogram, `process_start_time_seconds`,
`process_cpu_seconds_total` and `build_info{version}` (1). Per call edge, as a tracing
backend's service graph counts them: `traces_service_graph_request_total{client, server}`
and `traces_service_graph_request_failed_total{client, server}`.

A process that is down exposes nothing, as a scrape of a dead process would find; after
a restart its counters begin again at zero, which Prometheus reads as a counter reset.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric

from warroom.demo.shop import Shop


class ShopCollector:
    """A custom collector: each scrape first brings the shop up to the clock's time
    (through `catch_up`, by default `Shop.advance`)."""

    def __init__(self, shop: Shop, lock: threading.Lock, clock: Callable[[], float],
                 catch_up: Callable[[float], object] | None = None) -> None:
        self.shop, self.lock, self.clock = shop, lock, clock
        self.catch_up = catch_up or shop.advance

    def collect(self) -> Iterator[Metric]:
        with self.lock:
            now = self.clock()
            self.catch_up(now)
            yield from families(self.shop, now)


def families(shop: Shop, now: float) -> list[Metric]:
    """Every metric family of the shop as it stands at `now`."""
    requests = CounterMetricFamily("http_requests", "Requests served, by service and HTTP status.",
                                   labels=["service", "status"])
    durations = HistogramMetricFamily("http_request_duration_seconds",
                                      "Time to answer a request, its calls to other services included.",
                                      labels=["service"])
    started = GaugeMetricFamily("process_start_time_seconds", "When the service's process started (Unix time).",
                                labels=["service"])
    cpu = CounterMetricFamily("process_cpu_seconds", "CPU time the service's process used.", labels=["service"])
    build = GaugeMetricFamily("build_info", "The version the service runs (always 1).", labels=["service", "version"])
    for name, process in shop.processes.items():
        if not shop.up(name, now):
            continue
        telemetry = shop.telemetry[name]
        for status, count in sorted(telemetry.requests.items()):
            requests.add_metric([name, str(status)], count)
        durations.add_metric([name], buckets=telemetry.cumulative(), sum_value=telemetry.duration_sum_s)
        started.add_metric([name], process.started_at)
        cpu.add_metric([name], telemetry.cpu_s)
        build.add_metric([name, process.version], 1)
    calls = CounterMetricFamily("traces_service_graph_request", "Calls between services (service graph).",
                                labels=["client", "server"])
    failed = CounterMetricFamily("traces_service_graph_request_failed", "Failed calls between services.",
                                 labels=["client", "server"])
    for (client, server), edge in shop.edges.items():
        calls.add_metric([client, server], edge.calls)
        failed.add_metric([client, server], edge.failed)
    return [requests, durations, started, cpu, build, calls, failed]


def registry_for(shop: Shop, lock: threading.Lock, clock: Callable[[], float],
                 catch_up: Callable[[float], object] | None = None) -> CollectorRegistry:
    """A registry holding only the shop's metrics (no collector of this Python process)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(ShopCollector(shop, lock, clock, catch_up))
    return registry


def exposition(registry: CollectorRegistry) -> bytes:
    """The text format Prometheus scrapes."""
    return generate_latest(registry)
