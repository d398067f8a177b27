"""What `warroom up --demo` runs beside the core stack.

The shop (`warroom demo shop`, a supervised child like the worker), Debian's Prometheus
scraping it every few seconds and evaluating `alert_rules`, and Debian's Alertmanager
delivering those alerts to the gateway's `POST /v1/alerts/alertmanager` with an `ingest`
token. The worker's correlation is pointed at that Prometheus and tuned to the shop
(`correlation_overrides`). Ports are chosen before the core stack starts (the worker must
know where Prometheus will be); the processes start once it is ready. Before Prometheus
starts, its TSDB is filled with the hour of normal traffic the shop generated for its past
(`warroom.demo.history`), so the first faults are judged against a baseline. Without the
Debian binaries it says how to get them and runs the rest. Where everything runs is
written to `DATA_DIR/demo.json`, which `warroom demo fault --data-dir` and `warroom doctor
--data-dir` read.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel
from pydantic_settings import BaseSettings

from warroom.demo.faults import Schedule
from warroom.demo.history import HISTORY_S, JOB, SCRAPE_INTERVAL_S
from warroom.demo.shop import SHOP
from warroom.servers import HttpServer, Server, ServerError, ServerUnavailable, backfill_openmetrics, free_port
from warroom.servers.prometheus import (
    alertmanager_binary,
    http_ready,
    prometheus_binary,
    start_alertmanager,
    start_prometheus,
)
from foundation.settings import Settings

M = TypeVar("M", bound=BaseModel)

DEMO_FILE = "demo.json"
INSTALL_HINT = ("apt-get install prometheus prometheus-alertmanager "
                "(or run `scripts/dev up` as root, which installs them)")
SCRAPE_INTERVAL = f"{SCRAPE_INTERVAL_S:g}s"
RULE_FOR = "30s"
RULE_WINDOW = "1m"
ERROR_RATIO = 0.05
LATENCY_P95_S = 0.5
SHOP_READY_TIMEOUT_S = 30
INGEST_TOKEN_TTL_S = 30 * 24 * 3600


def alert_rules(rule_for: str = RULE_FOR, window: str = RULE_WINDOW) -> dict[str, Any]:
    """Prometheus alerting rules over the shop's metrics, one alert per service and kind of
    trouble: 5xx ratio, p95 latency, and a process that keeps restarting. Each names the
    correlation signal it is about in its `signal` label (`correlation.symptom_signal_label`),
    so ranking explains that signal of the incident's service."""
    def rule(name: str, expr: str, severity: str, signal: str, summary: str, description: str) -> dict[str, Any]:
        return {"alert": name, "expr": expr, "for": rule_for, "labels": {"severity": severity, "signal": signal},
                "annotations": {"summary": summary, "description": description}}

    total = f"sum by (service) (rate(http_requests_total[{window}]))"
    return {"groups": [{"name": "warroom-demo-shop", "rules": [
        rule("HighErrorRate",
             f'sum by (service) (rate(http_requests_total{{status=~"5.."}}[{window}])) / {total} > {ERROR_RATIO:g}',
             "critical", "errors", f"5xx above {ERROR_RATIO:.0%} on {{{{ $labels.service }}}}",
             "{{ $labels.service }} answers {{ $value | humanizePercentage }} of its requests with 5xx"),
        rule("HighLatency",
             "histogram_quantile(0.95, sum by (service, le) "
             f"(rate(http_request_duration_seconds_bucket[{window}]))) > {LATENCY_P95_S:g}",
             "high", "latency", f"p95 latency above {LATENCY_P95_S:g}s on {{{{ $labels.service }}}}",
             "{{ $labels.service }} answers 5% of its requests in more than {{ $value | humanizeDuration }}"),
        rule("CrashLooping", "changes(process_start_time_seconds[2m]) >= 2",
             "high", "restarts", "{{ $labels.service }} keeps restarting",
             "{{ $labels.service }} started {{ $value }} times in 2 minutes"),
    ]}]}


def start_demo_alertmanager(data_dir: Path, *, webhook_url: str, token: str, port: int | None = None,
                            host: str = "127.0.0.1") -> HttpServer:
    """Alertmanager delivering every alert, and its resolution, to `webhook_url` with a
    bearer `token`; one notification per alert name and service, within seconds."""
    data_dir.mkdir(parents=True, exist_ok=True)
    data_dir.chmod(0o700)  # its config holds the token
    # A notification log of an earlier run would hold back alerts this run's log never had.
    shutil.rmtree(data_dir / "state", ignore_errors=True)
    return start_alertmanager(data_dir, webhook_url=webhook_url, webhook_bearer_token=token, host=host, port=port,
                              group_by=("alertname", "service"), group_wait="5s", group_interval="10s",
                              repeat_interval="1h")


def start_demo_prometheus(data_dir: Path, *, shop: str, alertmanager: str | None, port: int | None = None,
                          host: str = "127.0.0.1", scrape_interval: str = SCRAPE_INTERVAL,
                          rule_for: str = RULE_FOR, rule_window: str = RULE_WINDOW) -> HttpServer:
    """Prometheus scraping the shop at `shop` (host:port) and evaluating `alert_rules`,
    firing to `alertmanager` (host:port) when there is one."""
    data_dir.mkdir(parents=True, exist_ok=True)
    rules = data_dir / "rules.yml"
    rules.write_text(json.dumps(alert_rules(rule_for, rule_window), indent=2) + "\n")  # JSON is YAML
    return start_prometheus(data_dir, scrape_targets=[shop], scrape_interval=scrape_interval, host=host,
                            port=port, job=JOB, rule_files=[rules],
                            alertmanagers=[alertmanager] if alertmanager else ())


# The shop's service graph counts every call by the callee's name (`server`), whether the
# callee answered or was down: what a service was asked to do, and how much of it failed.
_CALLS = 'sum(rate(traces_service_graph_request_total{{server="{service}"}}[{window}]))'
_FAILED_CALLS = 'sum(rate(traces_service_graph_request_failed_total{{server="{service}"}}[{window}]))'
_SERVED = 'sum(rate(http_requests_total{{{label}="{service}"}}[{window}]))'
_SERVED_5XX = 'sum(rate(http_requests_total{{{label}="{service}",status=~"5.."}}[{window}]))'


def demo_signals() -> dict[str, dict[str, Any]]:
    """What correlation reads of each shop service (`correlation.prometheus.signals`).

    Ranking weighs a signal's excess by the requests it touched (`traffic`, the volume) to
    decide whether a callee accounts for its caller, so each signal is chosen for that sum
    to mean what the requests suffered:

    - `errors`: the share of the calls to the service that failed, from the service graph
      (the entry service, which nobody calls, by its own 5xx): × calls, failed requests per
      second. A crashed process counts none of its refused calls itself; its callers do.
    - `latency`: the mean time to answer: × requests, the seconds waited per second,
      which a slow callee adds in full to the callers that waited for it. (A p95 does not
      add up: a caller sending a quarter of its requests to a slow callee has a p95 nearly
      as high on four times the requests.) The alert rule stays on the p95.
    - `traffic` (the volume, worse going down): the calls the service was asked to serve,
      surviving its restarts; the entry service's own count.
    - `saturation` (CPU), `restarts` (changes of the start time) and `deploys` (how many
      versions ran within the rate range: 2 just after a rollout).
    """
    return {
        "errors": {"query": f"({_FAILED_CALLS} / {_CALLS}) or (({_SERVED_5XX} or vector(0)) / {_SERVED})"},
        "latency": {"query": 'sum(rate(http_request_duration_seconds_sum{{{label}="{service}"}}[{window}]))'
                             ' / sum(rate(http_request_duration_seconds_count{{{label}="{service}"}}[{window}]))'},
        "traffic": {"query": f"{_CALLS} or {_SERVED}", "worse": "down"},
        "saturation": {"query": 'max(rate(process_cpu_seconds_total{{{label}="{service}"}}[{window}]))'},
        "restarts": {"query": 'sum(changes(process_start_time_seconds{{{label}="{service}"}}[{window}]))'},
        "deploys": {"query": 'count(count_over_time(build_info{{{label}="{service}"}}[{window}]))'},
    }


def correlation_overrides(prometheus_url: str) -> dict[str, Any]:
    """The settings the demo gives correlation: its Prometheus, the shop's label and
    signals, and a time scale for faults that last minutes.

    - `prometheus.window` (the range of rate() and changes()) 1m, as the alert rules':
      a fault shows in full a minute after it began; `step` 15 s (three scrapes).
    - `window` 90 s before the first alert's start: every demo fault begins at most about
      40 s before its first alert, and the one before it (the schedule leaves 150 s of calm
      after a clear) has left the 1-minute rates by then, so it is not taken for a cause.
    - `settle` 1m: what the callers showed a few steps after the alert is seen too.
    - `baseline` 30m: 120 steps, three swells of the traffic's 10-minute wave; the
      generated hour of history holds it from the first fault on.
    """
    return {"correlation": {
        "window": "90s", "settle": "1m", "baseline": "30m",
        "prometheus": {"url": prometheus_url, "service_label": "service", "window": "1m", "step": "15s",
                       "signals": demo_signals(), "volume": "traffic"}}}


def with_overrides(model: M, overrides: dict[str, Any]) -> M:
    """`model` (a settings model) with nested `overrides` applied, the rest kept; every
    section changed is validated again (a signal given as a dict becomes a `Signal`)."""
    update = {key: with_overrides(getattr(model, key), value)
              if isinstance(value, dict) and isinstance(getattr(model, key), BaseModel) else value
              for key, value in overrides.items()}
    if isinstance(model, BaseSettings):  # validating it again would read the environment again
        return model.model_copy(update=update)
    return type(model).model_validate(model.model_dump() | update)


def with_running_demo(settings: Settings, data_dir: Path) -> Settings:
    """`settings` as the worker of a `warroom up --demo` running in `data_dir` has them (the
    demo's Prometheus for correlation); unchanged when no demo runs there."""
    try:
        url = running_demo(data_dir).get("prometheus")
    except NoDemo:
        return settings
    return with_overrides(settings, correlation_overrides(url)) if url else settings


def as_env(overrides: dict[str, Any], prefix: str = "WARROOM_") -> dict[str, str]:
    """Nested settings as the `WARROOM_A__B` environment variables that set them."""
    env: dict[str, str] = {}
    for key, value in overrides.items():
        name = prefix + key.upper()
        env.update(as_env(value, name + "__") if isinstance(value, dict) else {name: str(value)})
    return env


def _say(message: str) -> None:
    print(f"warroom: demo: {message}", flush=True)


@dataclass
class DemoRun:
    """The demo of one `warroom up`: where each part will listen, and what is missing."""

    root: Path
    data_dir: Path
    host: str
    gateway_url: str
    scheduled: bool
    shop_port: int
    prometheus_port: int | None
    alertmanager_port: int | None
    missing: dict[str, str] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)
    started: dict[str, str] = field(default_factory=dict)
    history_error: str | None = None

    @property
    def prometheus_url(self) -> str | None:
        return f"http://{self.host}:{self.prometheus_port}" if self.prometheus_port else None

    def worker_env(self) -> dict[str, str]:
        """What the worker, projector and gateway get to correlate against the demo's Prometheus."""
        url = self.prometheus_url
        return as_env(correlation_overrides(url)) if url else {}

    @property
    def history_file(self) -> Path | None:
        """Where the shop writes its generated past, when a Prometheus will read it."""
        return self.root / "history.om" if self.prometheus_port else None

    def shop_argv(self) -> list[str]:
        history = ["--history-file", str(self.history_file)] if self.history_file else []
        return [sys.executable, "-m", "warroom", "demo", "shop", "--host", self.host, "--port", str(self.shop_port),
                "--faults", "on" if self.scheduled else "off", *history]

    def start(self, servers: list[Server], components: list[Any], *, ingest_token: str) -> None:
        """Start the shop, Alertmanager and Prometheus, appending each to `servers` or
        `components` as it starts (so the caller stops whatever did); then say where they are."""
        from warroom.devstack import Component

        shop = Component("demo-shop", self.shop_argv(), dict(os.environ, PYTHONUNBUFFERED="1"),
                         self.data_dir / "logs" / "demo-shop.log")
        shop.start()
        components.append(shop)
        shop_url = f"http://{self.host}:{self.shop_port}"
        _wait_for_shop(shop, shop_url)
        self.started["shop"] = shop_url
        graph = "; ".join(f"{spec.name} → {', '.join(c.callee for c in spec.calls)}" for spec in SHOP if spec.calls)
        _say(f"shop {shop_url}/metrics: {graph}")
        if self.alertmanager_port:
            self._server(servers, "alertmanager", lambda: start_demo_alertmanager(
                self.root / "alertmanager", webhook_url=f"{self.gateway_url}/v1/alerts/alertmanager",
                token=ingest_token, port=self.alertmanager_port, host=self.host))
        if self.prometheus_port:
            self._backfill()
            alertmanager = f"{self.host}:{self.alertmanager_port}" if "alertmanager" in self.started else None
            self._server(servers, "prometheus", lambda: start_demo_prometheus(
                self.root / "prometheus", shop=f"{self.host}:{self.shop_port}", alertmanager=alertmanager,
                port=self.prometheus_port, host=self.host))
        if "prometheus" in self.started:
            _say(f"Prometheus {self.started['prometheus']} (rules: HighErrorRate, HighLatency, CrashLooping; "
                 f"{'no history' if self.history_error else f'history: the last {HISTORY_S / 60:.0f} min generated'})")
            if self.history_error:
                _say(f"the shop's past could not be backfilled, so the first faults have no baseline to be "
                     f"judged against: {self.history_error}")
        if "alertmanager" in self.started:
            _say(f"Alertmanager {self.started['alertmanager']} → {self.gateway_url}/v1/alerts/alertmanager")
        for name, why in self.failed.items():
            _say(f"{name} did not start: {why}")
        if self.missing:
            _say(f"no alert reaches Warroom without Prometheus and Alertmanager ({'; '.join(self.missing.values())}); "
                 f"get them with: {INSTALL_HINT}. The shop and the rest of Warroom run meanwhile")
        self._announce_faults()
        (self.data_dir / DEMO_FILE).write_text(json.dumps(
            {"pid": os.getpid(), **self.started,
             "children": {"demo-shop": shop.process.pid if shop.process else None}
             | {s.name: s.pid for s in servers if s.name in self.started}}, indent=2))

    def _backfill(self) -> None:
        """The shop's generated past into a fresh TSDB for Prometheus. The log of a
        `warroom up` lives as long as it does, and so do the demo's metrics: an earlier
        run's would overlap this run's past under another scrape address."""
        tsdb = self.root / "prometheus" / "tsdb"
        shutil.rmtree(tsdb, ignore_errors=True)
        history = self.history_file
        assert history is not None
        try:
            backfill_openmetrics(history, tsdb, self.root / "promtool.log")
        except (ServerUnavailable, ServerError) as err:  # Prometheus still runs, from now on
            shutil.rmtree(tsdb, ignore_errors=True)
            self.history_error = str(err)
        finally:
            history.unlink(missing_ok=True)

    def _server(self, servers: list[Server], name: str, start: Any) -> None:
        try:
            server = start()
        except ServerUnavailable as err:
            self.missing[name] = str(err)
            return
        except ServerError as err:  # installed, but would not start: the rest runs on
            self.failed[name] = str(err)
            return
        servers.append(server)
        self.started[name] = server.url

    def _announce_faults(self) -> None:
        hint = (f"inject one: warroom demo fault --service payments --kind latency --data-dir {self.data_dir} "
                "(kinds: bad-deploy, latency, crash-loop, clear)")
        if not self.scheduled:
            _say(f"faults only by hand (--demo-faults off); {hint}")
            return
        first = Schedule(0).next
        _say(f"first fault in {first.at:.0f}s ({first.kind} on {first.service}), then one every few minutes; {hint}")


def _wait_for_shop(shop: Any, url: str) -> None:
    deadline = time.monotonic() + SHOP_READY_TIMEOUT_S
    while not http_ready(f"{url}/healthz"):
        if shop.process.poll() is not None or time.monotonic() > deadline:
            from warroom.servers.process import log_tail

            raise ServerError(f"the demo shop did not start on {url}; last lines of {shop.log_path}:\n"
                              f"{log_tail(shop.log_path)}")
        time.sleep(0.1)


def plan(data_dir: Path, *, host: str, gateway_url: str, scheduled: bool) -> DemoRun:
    """Ports for the shop, Prometheus and Alertmanager, and which Debian binaries are
    missing (those are left out). Nothing starts yet."""
    (data_dir / DEMO_FILE).unlink(missing_ok=True)
    missing: dict[str, str] = {}
    ports: dict[str, int | None] = {}
    for name, find in (("prometheus", prometheus_binary), ("alertmanager", alertmanager_binary)):
        try:
            find()
            ports[name] = free_port(host)
        except ServerUnavailable as err:
            missing[name], ports[name] = str(err), None
    return DemoRun(root=data_dir / "demo", data_dir=data_dir, host=host, gateway_url=gateway_url,
                   scheduled=scheduled, shop_port=free_port(host), prometheus_port=ports["prometheus"],
                   alertmanager_port=ports["alertmanager"], missing=missing)


# -- finding a running demo ------------------------------------------------------------


class NoDemo(Exception):
    """No demo runs for this data directory; the message says why."""


def running_demo(data_dir: Path) -> dict[str, Any]:
    """What `warroom up --demo` wrote to DATA_DIR/demo.json, if it belongs to the `warroom up`
    that runs there now (the one stack.json names)."""
    path = data_dir / DEMO_FILE
    try:
        demo = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise NoDemo(f"cannot read {path} (is `warroom up --demo` running with --data-dir {data_dir}?): "
                     f"{err}") from None
    try:
        stack = json.loads((data_dir / "stack.json").read_text())
    except (OSError, ValueError):
        stack = {}
    if stack.get("pid") != demo.get("pid"):
        raise NoDemo(f"{path} is from an earlier `warroom up`: the one running in {data_dir} has no demo")
    return demo

