"""The correlation sources against real servers: Prometheus (the harness's binary,
scraping an exporter this test drives), and Loki and the Kubernetes API replayed from
recordings in their documented formats."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from contracts.commands import CompleteCorrelation, CompleteCorrelationSource, RecordFinding
from harness.clocks import FakeClock
from harness.replay_servers import ReplayServer, kubernetes_route, loki_route, prometheus_empty_route
from harness.waiting import wait_for_async
from streams.correlation import IncidentFacts, assess_impact, build_sources, close_sources, correlate
from streams.correlation.loki import build_queries as loki_queries
from streams.correlation.probe import probe_sources
from warroom.servers import free_port
from warroom.settings import Settings

pytestmark = pytest.mark.timeout(180)

METRIC = "warroom_corr_requests"  # our own names: the exporter is shared by the session
START_TIME = "warroom_corr_start_time_seconds"
ERROR_RATE = (f'sum(rate({METRIC}_total{{{{{{label}}="{{service}}",status=~"5.."}}}}[{{window}}]))'
              f' / sum(rate({METRIC}_total{{{{{{label}}="{{service}}"}}}}[{{window}}]))')
REQUEST_RATE = f'sum(rate({METRIC}_total{{{{{{label}}="{{service}}"}}}}[{{window}}]))'
RESTARTS = f'sum(changes({START_TIME}{{{{{{label}}="{{service}}"}}}}[{{window}}]))'


def _settings(**correlation) -> Settings:
    prometheus = {"window": "1m", "lookback": "3m", "step": "1s",
                  "queries": {"error_rate": ERROR_RATE, "request_rate": REQUEST_RATE},
                  "thresholds": {"error_rate": 0.05, "restarts": 0}}
    prometheus |= correlation.pop("prometheus", {})
    base = {"sources": ["prometheus"], "backoff_base_s": 0.01, "backoff_max_s": 0.05, "timeout_s": 5,
            "prometheus": prometheus}
    return Settings(correlation=base | correlation)


def _service() -> str:
    return f"checkout-{uuid.uuid4().hex[:8]}"


class Traffic:
    """Requests of one service, counted in the exporter ten times a second."""

    def __init__(self, exporter, service: str, label: str = "service") -> None:
        self.counter = exporter.counter(METRIC, "requests by service and status", ("service", "app", "status"))
        self.start_time = exporter.gauge(START_TIME, "process start time", ("service", "app"))
        self.names = {"service": "", "app": ""} | {label: service}
        self.errors_per_tick = 0
        self.start_time.labels(**self.names).set(time.time())

    def deploy(self) -> None:
        """A new process: its start time changes."""
        self.start_time.labels(**self.names).set(time.time())

    @contextlib.asynccontextmanager
    async def flowing(self) -> AsyncIterator[Traffic]:
        async def tick() -> None:
            while True:
                self.counter.labels(**self.names, status="200").inc(10)
                if self.errors_per_tick:
                    self.counter.labels(**self.names, status="500").inc(self.errors_per_tick)
                await asyncio.sleep(0.1)

        task = asyncio.create_task(tick())
        try:
            yield self
        finally:
            task.cancel()


async def _value(prometheus, expr: str) -> float | None:
    async with httpx.AsyncClient() as http:
        body = (await http.get(f"{prometheus.url}/api/v1/query", params={"query": expr})).json()
    result = body["data"]["result"]
    return float(result[0]["value"][1]) if result else None


async def _above(prometheus, expr: str, threshold: float, what: str) -> None:
    async def check() -> bool:
        value = await _value(prometheus, expr)
        return value is not None and value > threshold
    await wait_for_async(check, timeout=60, interval=0.25, message=what)


def _render(template: str, service: str, label: str = "service", window: str = "1m") -> str:
    return template.format(label=label, service=service, window=window)


async def _run(settings: Settings, service: str, sources=None, clock=None, opened_at=None) -> list:
    own = sources is None
    sources = sources or build_sources(settings)
    incident = IncidentFacts(uuid.uuid4(), service, opened_at or datetime.now(UTC))
    try:
        kwargs = {"clock": clock} if clock else {}
        return [c async for c in correlate(settings, incident, uuid.uuid4(), sources, **kwargs)]
    finally:
        if own:
            await close_sources(sources)


def _done(commands: list, source: str) -> CompleteCorrelationSource:
    [done] = [c for c in commands if isinstance(c, CompleteCorrelationSource) and c.source == source]
    return done


def _findings(commands: list) -> dict[str, RecordFinding]:
    return {c.kind: c for c in commands if isinstance(c, RecordFinding)}


# --- Prometheus ------------------------------------------------------------------------


async def test_error_spike_after_a_deploy(prometheus, exporter) -> None:
    service = _service()
    traffic = Traffic(exporter, service)
    settings = _settings(prometheus={"url": prometheus.url,
                                     "queries": {"error_rate": ERROR_RATE, "request_rate": REQUEST_RATE,
                                                 "restarts": RESTARTS}})
    async with traffic.flowing():
        await _above(prometheus, _render(REQUEST_RATE, service), 0, "traffic scraped")
        traffic.deploy()
        await _above(prometheus, _render(RESTARTS, service), 0, "the deploy scraped")
        traffic.errors_per_tick = 4
        await _above(prometheus, _render(ERROR_RATE, service), 0.05, "the error spike scraped")
        commands = await _run(settings, service)

    done = _done(commands, "prometheus")
    assert (done.outcome, done.error, done.attempts) == ("succeeded", None, done.attempts)
    assert _render(ERROR_RATE, service) in done.queries
    found = _findings(commands)
    errors = found["error_rate"]
    assert errors.evidence["query"] == _render(ERROR_RATE, service)
    assert errors.evidence["window"] == "1m"
    assert 0.05 < errors.evidence["value"] < 1
    assert errors.evidence["link"].startswith(f"{prometheus.url}/graph?g0.expr=")
    assert errors.summary.startswith("error rate ")
    restart = found["restarts"]
    assert restart.changed_at is not None and errors.changed_at is not None
    assert restart.changed_at < errors.changed_at  # the deploy came first...
    final = commands[-1]
    assert isinstance(final, CompleteCorrelation) and final.outcome == "succeeded"
    assert [h["category"] for h in final.hypotheses] == ["change", "errors"]  # ...so it ranks first


async def test_a_misnamed_metric_completes_no_data_naming_the_query(prometheus) -> None:
    service = _service()
    misnamed = ERROR_RATE.replace(f"{METRIC}_total", "http_requests_totl")
    settings = _settings(prometheus={"url": prometheus.url, "queries": {"error_rate": misnamed}})
    commands = await _run(settings, service)
    done = _done(commands, "prometheus")
    assert done.outcome == "no_data"
    assert done.error == f"error_rate: no series for {_render(misnamed, service)}"
    assert "http_requests_totl" in done.error and done.queries == [_render(misnamed, service)]
    assert commands[-1].outcome == "partial"


async def test_an_app_label_scheme_works_once_configured(prometheus, exporter) -> None:
    service = _service()
    traffic = Traffic(exporter, service, label="app")
    traffic.errors_per_tick = 3
    async with traffic.flowing():
        await _above(prometheus, _render(ERROR_RATE, service, label="app"), 0.05, "app-labelled errors scraped")
        as_service = await _run(_settings(prometheus={"url": prometheus.url}), service)
        as_app = await _run(_settings(prometheus={"url": prometheus.url, "service_label": "app"}), service)

    wrong = _done(as_service, "prometheus")
    assert wrong.outcome == "no_data" and f'service="{service}"' in wrong.error
    right = _done(as_app, "prometheus")
    assert right.outcome == "succeeded"
    assert f'app="{service}"' in _findings(as_app)["error_rate"].evidence["query"]


async def test_a_bad_template_fails_naming_the_prometheus_error(prometheus) -> None:
    settings = _settings(prometheus={"url": prometheus.url, "queries": {"broken": "sum(rate(x[{window}])"}})
    done = _done(await _run(settings, _service()), "prometheus")
    assert done.outcome == "failed" and done.attempts == 1  # refused queries are not retried
    assert done.error.startswith("broken: Prometheus refused 'sum(rate(x[1m])': bad_data: ")


async def test_prometheus_down_fails_after_retries_then_the_breaker_opens_and_recovers(prometheus) -> None:
    clock = FakeClock(datetime.now(UTC))  # real wall time for queries; backoff and breaker on our clock
    settings = _settings(prometheus={"url": prometheus.url}, breaker_failures=5, breaker_reset_s=30)
    sources = build_sources(settings, clock)
    service = _service()
    prometheus.stop()
    try:
        first = _done(await _run(settings, service, sources, clock), "prometheus")
        assert first.outcome == "failed" and first.attempts == 3
        assert "unreachable: ConnectError" in first.error and first.error.endswith("(after 3 attempts)")

        second = _done(await _run(settings, service, sources, clock), "prometheus")
        assert second.outcome == "failed" and second.attempts == 2  # the 5th failure opened it
        assert second.error.startswith("circuit open for prometheus after 5 consecutive failures (last: ")

        third = _done(await _run(settings, service, sources, clock), "prometheus")
        assert third.outcome == "failed" and third.attempts == 0  # not even tried
        assert third.error.startswith("circuit open") and third.error.endswith("next trial in 30 s")
    finally:
        prometheus.restart()
    try:
        clock.advance(30.5)  # past the reset (30 s): one trial goes out, and Prometheus is back
        clock.wall = datetime.now(UTC)
        recovered = await _run(settings, service, sources, clock)
        done = _done(recovered, "prometheus")
        assert done.outcome == "no_data", done.error  # answered: this service has no series
        assert done.attempts >= 1
        assert sources["prometheus"].breaker.state == "closed"
    finally:
        await close_sources(sources)


async def test_a_source_slower_than_the_run_deadline_times_out() -> None:
    slow = ReplayServer(prometheus_empty_route, delay_s=30)
    try:
        settings = _settings(prometheus={"url": slow.url}, run_deadline_s=0.5, timeout_s=10)
        began = time.monotonic()
        commands = await _run(settings, _service())
        elapsed = time.monotonic() - began
    finally:
        slow.close()
    done = _done(commands, "prometheus")
    assert done.outcome == "timed_out" and done.attempts == 1
    assert done.error.startswith("still running at the run deadline of 0.5 s")
    assert 500 <= done.duration_ms < 5000 and elapsed < 5
    assert commands[-1].outcome == "failed"
    assert slow.requests and slow.requests[0][0] == "/api/v1/query"


async def test_a_closed_port_is_failed_not_silent() -> None:
    settings = _settings(prometheus={"url": f"http://127.0.0.1:{free_port()}"})
    done = _done(await _run(settings, _service()), "prometheus")
    assert done.outcome == "failed" and done.attempts == 3 and "ConnectError" in done.error


async def test_slo_impact_from_prometheus(prometheus, exporter) -> None:
    service = _service()
    traffic = Traffic(exporter, service)
    traffic.errors_per_tick = 1
    good = f'sum(rate({METRIC}_total{{{{service="{service}",status!~"5.."}}}}[{{window}}]))'
    total = f'sum(rate({METRIC}_total{{{{service="{service}"}}}}[{{window}}]))'
    slo = {"name": "availability", "service": service, "good_query": good, "total_query": total,
           "objective": 0.99, "window": "2m", "burn_window": "1m", "cost_per_minute": 100.0}
    settings = Settings(correlation={"prometheus": {"url": prometheus.url}}, impact={"slos": [slo]})
    incident = IncidentFacts(uuid.uuid4(), service, datetime.now(UTC) - timedelta(minutes=2))
    async with traffic.flowing():
        await _above(prometheus, total.format(window="1m"), 0, "traffic scraped")
        await _above(prometheus, f"({total} - {good})".format(window="1m"), 0, "errors scraped")
        [assessed] = await assess_impact(settings, incident, {})
        strict = Settings(correlation={"prometheus": {"url": prometheus.url}},
                          impact={"slos": [slo], "min_change": 1e9})
        again = await assess_impact(strict, incident, {"availability": assessed})
    # 1 of 11 requests fails: 9.1% against an allowed 1%.
    assert assessed.slo == "availability" and assessed.window == "2m"
    assert 7 < assessed.burn_rate < 11 and assessed.error_budget_left < 0
    assert assessed.estimated_cost is not None and assessed.estimated_cost > 0
    assert again == []  # the numbers did not move by a billion


# --- Loki (replayed) --------------------------------------------------------------------

LOKI_NOW = datetime(2024, 5, 1, 10, 1, tzinfo=UTC)  # the recordings' moment


def _loki_settings(url: str, **loki) -> Settings:
    return Settings(correlation={"sources": ["loki"], "backoff_base_s": 0.01,
                                 "loki": {"url": url, "service_label": "app", "window": "15m", "step": "1m"} | loki})


@pytest.fixture
def loki_replay():
    queries = loki_queries(_loki_settings("http://unused").correlation.loki, "checkout")
    server = ReplayServer(loki_route({queries["volume"]: "volume.json", queries["errors"]: "errors.json",
                                      queries["baseline"]: "baseline.json", queries["lines"]: "error_lines.json"}))
    yield server
    server.close()


async def test_loki_error_lines_against_the_baseline_with_patterns(loki_replay) -> None:
    settings = _loki_settings(loki_replay.url)
    commands = await _run(settings, "checkout", clock=FakeClock(LOKI_NOW),
                          opened_at=LOKI_NOW - timedelta(minutes=1))
    done = _done(commands, "loki")
    assert (done.outcome, done.attempts, len(done.queries)) == ("succeeded", 4, 4)
    found = _findings(commands)
    errors = found["log_errors"]
    assert (errors.evidence["value"], errors.evidence["baseline"]) == (371, 4)
    assert errors.changed_at == datetime(2024, 5, 1, 9, 58, tzinfo=UTC)  # the spike, not the lone 09:50 line
    assert errors.summary == "371 error lines in 15m, baseline 4 (1h earlier)"
    assert errors.evidence["link"].startswith(f"{loki_replay.url}/loki/api/v1/query_range?query=")
    patterns = found["error_patterns"].evidence["patterns"]
    assert patterns[0]["count"] == 4 and "order_id=<n> upstream=<ip>" in patterns[0]["template"]
    # The window asked for is the one configured, in nanoseconds.
    path, params = loki_replay.requests[0]
    assert path == "/loki/api/v1/query_range"
    assert int(params["end"]) - int(params["start"]) == 15 * 60 * 10**9 and params["step"] == "60"
    assert [r[1].get("direction") for r in loki_replay.requests] == [None, None, None, "backward"]


async def test_loki_without_lines_for_the_selector_is_no_data_naming_it(loki_replay) -> None:
    settings = _loki_settings(loki_replay.url, service_label="service")
    done = _done(await _run(settings, "checkout", clock=FakeClock(LOKI_NOW)), "loki")
    assert done.outcome == "no_data"
    assert done.error == ('no log lines for checkout in the last 15m: '
                          'sum(count_over_time({service="checkout"}[1m]))')


async def test_loki_refusing_a_query_fails_with_its_message(loki_replay) -> None:
    settings = _loki_settings(loki_replay.url, error_query='{{{label}="{service}"')
    done = _done(await _run(settings, "checkout", clock=FakeClock(LOKI_NOW)), "loki")
    assert done.outcome == "failed" and done.attempts == 2  # volume answered, errors refused at once
    assert "Loki refused" in done.error and "HTTP 400: parse error" in done.error


# --- Kubernetes (replayed) ---------------------------------------------------------------


@pytest.fixture
def kubernetes_api():
    server = ReplayServer(kubernetes_route)
    yield server
    server.close()


def _k8s_settings(host: str | None, **kubernetes) -> Settings:
    return Settings(correlation={"sources": ["kubernetes"], "backoff_base_s": 0.01,
                                 "kubernetes": {"host": host, "namespace": "shop"} | kubernetes})


async def test_kubernetes_rollout_crash_loop_and_warnings(kubernetes_api) -> None:
    commands = await _run(_k8s_settings(kubernetes_api.url), "checkout", clock=FakeClock(LOKI_NOW),
                          opened_at=LOKI_NOW - timedelta(minutes=1))
    done = _done(commands, "kubernetes")
    assert done.outcome == "succeeded" and done.attempts == 3
    assert done.queries == [
        "GET /api/v1/namespaces/shop/pods?labelSelector=app%3Dcheckout",
        "GET /apis/apps/v1/namespaces/shop/replicasets?labelSelector=app%3Dcheckout",
        "GET /api/v1/namespaces/shop/events?fieldSelector=type%3DWarning",
    ]
    asked = {path: params for path, params in kubernetes_api.requests}
    assert asked["/api/v1/namespaces/shop/pods"]["labelSelector"] == "app=checkout"
    assert asked["/api/v1/namespaces/shop/events"]["fieldSelector"] == "type=Warning"
    found = _findings(commands)
    assert set(found) == {"rollout", "crash_loop", "oom_killed", "container_restarts", "pods_not_ready",
                          "warning_events"}
    assert found["rollout"].evidence["revision"] == "4"
    hypotheses = commands[-1].hypotheses
    assert [h["category"] for h in hypotheses] == ["change", "crash"]
    assert hypotheses[0]["changed_at"] == "2024-05-01T09:57:40+00:00"


async def test_kubernetes_selector_matching_no_pods_is_no_data_naming_it(kubernetes_api) -> None:
    settings = _k8s_settings(kubernetes_api.url, label_selector="service={service}")
    done = _done(await _run(settings, "checkout", clock=FakeClock(LOKI_NOW)), "kubernetes")
    assert done.outcome == "no_data"
    assert done.error.startswith("no pods match label selector 'service=checkout' in namespace shop")


async def test_kubernetes_not_configured_is_unavailable() -> None:
    commands = await _run(_k8s_settings(None), "checkout")
    done = _done(commands, "kubernetes")
    assert done.outcome == "unavailable" and done.attempts == 0
    assert "correlation.kubernetes" in done.error
    assert commands[-1].outcome == "failed"


async def test_kubernetes_api_down_is_failed_after_retries() -> None:
    done = _done(await _run(_k8s_settings(f"http://127.0.0.1:{free_port()}"), "checkout"), "kubernetes")
    assert done.outcome == "failed" and done.attempts == 3
    assert "Kubernetes API unreachable" in done.error


# --- doctor ---------------------------------------------------------------------------------


async def test_probe_names_empty_queries_and_the_label_values_that_exist(prometheus, exporter) -> None:
    service = _service()
    traffic = Traffic(exporter, service)
    async with traffic.flowing():
        await _above(prometheus, _render(REQUEST_RATE, service), 0, "traffic scraped")
        settings = _settings(sources=["prometheus", "kubernetes"], prometheus={"url": prometheus.url})
        [prom, k8s] = await probe_sources(settings, service)
    assert prom["outcome"] == "no_data"  # no 5xx yet: the error-rate ratio has no series
    assert prom["error"].startswith("error_rate: no series for ") and "request_rate" not in prom["error"]
    assert prom["label_values"]["label"] == "service" and prom["label_values"]["has_service"]
    assert k8s["outcome"] == "unavailable"
