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
from contracts.evidence import SeriesEvidence
from harness.history import samples, start_history, wobble
from harness.replay_servers import ReplayServer, kubernetes_route, loki_route, prometheus_empty_route
from harness.servers import start_or_give_up
from harness.waiting import wait_for_async
from streams.correlation import IncidentFacts, assess_impact, build_sources, close_sources, correlate
from streams.correlation.loki import build_queries as loki_queries
from streams.correlation.probe import probe_sources
from warroom.petshop.dataset import SeriesSamples
from warroom.servers import free_port
from foundation.settings import Settings, TopologySettings

pytestmark = pytest.mark.timeout(180)

METRIC = "warroom_corr_requests"  # our own names: the exporter is shared by the session
START_TIME = "warroom_corr_start_time_seconds"
ERROR_RATE = (f'sum(rate({METRIC}_total{{{{{{label}}="{{service}}",status=~"5.."}}}}[{{window}}]))'
              f' / sum(rate({METRIC}_total{{{{{{label}}="{{service}}"}}}}[{{window}}]))')
REQUEST_RATE = f'sum(rate({METRIC}_total{{{{{{label}}="{{service}}"}}}}[{{window}}]))'


def _settings(**correlation) -> Settings:
    prometheus = {"window": "1m", "step": "1s",
                  "signals": {"errors": {"query": ERROR_RATE}, "traffic": {"query": REQUEST_RATE, "worse": "down"}}}
    prometheus |= correlation.pop("prometheus", {})
    base = {"sources": ["prometheus"], "backoff_base_s": 0.01, "backoff_max_s": 0.05, "timeout_s": 5,
            "window": "1m", "settle": "0s", "baseline": "2m", "prometheus": prometheus}
    return Settings(correlation=base | correlation, topology={"discovery": []})


def _service() -> str:
    return f"checkout-{uuid.uuid4().hex[:8]}"


class Traffic:
    """Requests of one service, counted in the exporter ten times a second."""

    def __init__(self, exporter, service: str, label: str = "service") -> None:
        self.counter = exporter.counter(METRIC, "requests by service and status", ("service", "app", "status"))
        self.names = {"service": "", "app": ""} | {label: service}
        self.errors_per_tick = 0

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


async def _run(settings: Settings, service: str, sources=None, clock=None, opened_at=None,
               alert_started_at=None) -> list:
    own = sources is None
    sources = sources or build_sources(settings)
    incident = IncidentFacts(uuid.uuid4(), service, opened_at or datetime.now(UTC), alert_started_at)
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


# --- Prometheus: an incident of the past, one hop above its cause ---------------------------

PAST = datetime(2024, 3, 10, 12, 0, tzinfo=UTC)  # when the alert fired
STEP = timedelta(minutes=1)
LATENCY = "warroom_hist_latency_seconds"
STARTED = "warroom_hist_start_time_seconds"
CALLS = ["web -> api", "api -> db", "api -> cache", "web -> search"]


def _latency(service: str, slow_from: timedelta | None, slow: float):
    def value_at(moment: datetime) -> float:
        normal = 0.1 + wobble(moment, 0.01)
        return slow if slow_from is not None and moment >= PAST - slow_from else normal
    return value_at


@pytest.fixture(scope="module")
def history(tmp_path_factory):
    """Two days of three services: db slows at PAST − 5 min after a restart, api (which
    calls it) follows a minute later, web (the symptom) a minute after that. search is
    normal; cache has no series at all."""
    start, end = PAST - timedelta(days=2), PAST + timedelta(minutes=30)
    series = [SeriesSamples(LATENCY, {"service": name}, samples(start, end, STEP, _latency(name, lag, slow)))
              for name, lag, slow in (("db", timedelta(minutes=5), 2.0), ("api", timedelta(minutes=4), 2.1),
                                      ("web", timedelta(minutes=3), 2.2), ("search", None, 0.0))]
    restarted = PAST - timedelta(minutes=6)
    series += [SeriesSamples(STARTED, {"service": name}, samples(
        start, end, STEP, lambda m, name=name: (restarted if name == "db" and m >= restarted else start).timestamp()))
        for name in ("db", "api", "web", "search")]
    server = start_or_give_up("Prometheus", lambda: start_history(tmp_path_factory.mktemp("history"), series))
    yield server
    server.stop()


def _history_settings(url: str, **topology) -> Settings:
    signals = {"latency": {"query": f'{LATENCY}{{{{{{label}}="{{service}}"}}}}'},
               "restarts": {"query": f'changes({STARTED}{{{{{{label}}="{{service}}"}}}}[{{window}}])'}}
    return Settings(correlation={"sources": ["prometheus"], "backoff_base_s": 0.01, "window": "10m",
                                 "settle": "5m", "baseline": "24h",
                                 "prometheus": {"url": url, "step": "60s", "window": "2m", "signals": signals}},
                    topology={"edges": CALLS, "discovery": []} | topology)


async def test_a_fault_one_hop_below_the_symptom_is_found_at_the_incidents_own_time(history) -> None:
    # Analysed two years later: the window is the incident's, not the wall clock's.
    commands = await _run(_history_settings(history.url), "web", opened_at=PAST + timedelta(minutes=1),
                          alert_started_at=PAST)
    done = _done(commands, "prometheus")
    assert (done.outcome, done.error) == ("succeeded", None)  # cache has no series: not a problem
    assert len(done.queries) == 10  # web, api, search, cache, db × two signals
    findings = [c for c in commands if isinstance(c, RecordFinding)]
    assert {(f.service, f.signal) for f in findings} == {("web", "latency"), ("api", "latency"),
                                                         ("db", "latency"), ("db", "restarts")}
    by = {(f.service, f.signal): f for f in findings}
    db = by[("db", "latency")]
    assert db.changed_at == PAST - timedelta(minutes=5) and by[("api", "latency")].changed_at == PAST - timedelta(minutes=4)
    assert by[("db", "restarts")].changed_at == PAST - timedelta(minutes=6)
    evidence = SeriesEvidence.model_validate(db.evidence)
    assert evidence.query == f'{LATENCY}{{service="db"}}' and evidence.service == "db"
    assert evidence.window == "2024-03-10T11:50:00Z/2024-03-10T12:05:00Z"
    assert evidence.baseline == "2024-03-09T11:50:00Z/2024-03-10T11:50:00Z"
    assert 0 < len(evidence.values) <= 300 and evidence.values[-1][1] == 2.0
    assert evidence.anomaly.peak == pytest.approx(2.0) and 0.09 < evidence.anomaly.typical < 0.11
    assert evidence.link.startswith(f"{history.url}/graph?g0.expr=")
    final = commands[-1]
    assert isinstance(final, CompleteCorrelation) and final.outcome == "succeeded"
    assert final.hypotheses[0].service == "db" and final.hypotheses[0].path == ["db", "api", "web"]
    assert {h.service for h in final.hypotheses} == {"db", "api", "web"}


async def test_the_depth_bounds_what_a_run_examines(history) -> None:
    commands = await _run(_history_settings(history.url, max_depth=1), "web", opened_at=PAST)
    findings = [c for c in commands if isinstance(c, RecordFinding)]
    assert {f.service for f in findings} == {"web", "api"}  # db is two hops down
    assert len(_done(commands, "prometheus").queries) == 6


async def test_a_run_opened_hours_before_the_fault_sees_nothing_yet(history) -> None:
    commands = await _run(_history_settings(history.url), "web", opened_at=PAST - timedelta(hours=3))
    assert _done(commands, "prometheus").outcome == "succeeded"
    assert not [c for c in commands if isinstance(c, RecordFinding)] and commands[-1].hypotheses == []


async def test_a_misnamed_metric_completes_no_data_naming_the_query(prometheus) -> None:
    service = _service()
    misnamed = ERROR_RATE.replace(f"{METRIC}_total", "http_requests_totl")
    settings = _settings(prometheus={"url": prometheus.url, "signals": {"errors": {"query": misnamed}}})
    commands = await _run(settings, service)
    done = _done(commands, "prometheus")
    assert done.outcome == "no_data"
    assert done.error == f"errors: no series for {_render(misnamed, service)}"
    assert "http_requests_totl" in done.error and done.queries == [_render(misnamed, service)]
    assert commands[-1].outcome == "partial"


async def test_an_app_label_scheme_works_once_configured(prometheus, exporter) -> None:
    service = _service()
    traffic = Traffic(exporter, service, label="app")
    traffic.errors_per_tick = 3
    async with traffic.flowing():
        await _above(prometheus, _render(ERROR_RATE, service, label="app"), 0.05, "app-labelled errors scraped")
        # A run asks a range of whole seconds: let the rate exist for a few of them first.
        await _above(prometheus, f"count_over_time(({_render(REQUEST_RATE, service, label='app')})[10s:1s])", 3,
                     "a few seconds of app-labelled traffic")
        as_service = await _run(_settings(prometheus={"url": prometheus.url}), service)
        as_app = await _run(_settings(prometheus={"url": prometheus.url, "service_label": "app"}), service)

    wrong = _done(as_service, "prometheus")
    assert wrong.outcome == "no_data" and f'service="{service}"' in wrong.error
    right = _done(as_app, "prometheus")
    assert (right.outcome, right.error) == ("succeeded", None), right.error
    assert right.queries and all(f'app="{service}"' in query for query in right.queries)


async def test_a_bad_template_fails_naming_the_prometheus_error(prometheus) -> None:
    service = _service()
    settings = _settings(prometheus={"url": prometheus.url, "signals": {"broken": {"query": "sum(rate(x[{window}])"}}})
    done = _done(await _run(settings, service), "prometheus")
    assert done.outcome == "failed" and done.attempts == 1  # refused queries are not retried
    assert done.error.startswith(f"broken of {service}: Prometheus refused 'sum(rate(x[1m])': bad_data: ")


async def test_prometheus_down_fails_after_retries_then_the_breaker_opens_and_recovers(prometheus) -> None:
    clock = FakeClock(datetime.now(UTC))  # real wall time for queries; backoff and breaker on our clock
    settings = _settings(prometheus={"url": prometheus.url, "signals": {"errors": {"query": ERROR_RATE}}},
                         breaker_failures=5, breaker_reset_s=30)
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
        settings = _settings(prometheus={"url": slow.url, "signals": {"errors": {"query": ERROR_RATE}}},
                             run_deadline_s=0.5, timeout_s=10)
        began = time.monotonic()
        commands = await _run(settings, _service())
        elapsed = time.monotonic() - began
    finally:
        slow.close()
    done = _done(commands, "prometheus")
    assert done.outcome == "timed_out" and done.attempts == 1
    assert done.error.startswith("still running at the run deadline of 0.5 s")
    # From the source's start, which follows choosing what to examine: a little under the deadline.
    assert 400 <= done.duration_ms < 5000 and elapsed < 5
    assert commands[-1].outcome == "failed"
    assert slow.requests and slow.requests[0][0] == "/api/v1/query_range"


async def test_a_closed_port_is_failed_not_silent() -> None:
    settings = _settings(prometheus={"url": f"http://127.0.0.1:{free_port()}"})  # two signals
    done = _done(await _run(settings, _service()), "prometheus")
    # The first query to give up ends the source; the other is not asked further.
    assert done.outcome == "failed" and 3 <= done.attempts <= 6 and "ConnectError" in done.error


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
    # The recordings hold the 15 minutes up to LOKI_NOW; an incident opened then, analysed then.
    return Settings(correlation={"sources": ["loki"], "backoff_base_s": 0.01, "window": "15m", "settle": "0s",
                                 "loki": {"url": url, "service_label": "app", "step": "1m"} | loki},
                    topology={"discovery": []})


@pytest.fixture
def loki_replay():
    queries = loki_queries(_loki_settings("http://unused").correlation.loki, "checkout", "15m")
    server = ReplayServer(loki_route({queries["volume"]: "volume.json", queries["errors"]: "errors.json",
                                      queries["baseline"]: "baseline.json", queries["lines"]: "error_lines.json"}))
    yield server
    server.close()


async def test_loki_error_lines_against_the_baseline_with_patterns(loki_replay) -> None:
    settings = _loki_settings(loki_replay.url).model_copy(update={"topology": TopologySettings(
        edges=["checkout -> payments"], discovery=[])})
    commands = await _run(settings, "checkout", clock=FakeClock(LOKI_NOW), opened_at=LOKI_NOW)
    done = _done(commands, "loki")
    # checkout's four queries, and payments' volume: it has no lines, which is no problem.
    assert (done.outcome, done.attempts, len(done.queries)) == ("succeeded", 5, 5)
    assert 'sum(count_over_time({app="payments"}[1m]))' in done.queries
    found = _findings(commands)
    errors = found["log_errors"]
    assert (errors.service, errors.signal) == ("checkout", "log_errors")
    assert (errors.evidence["value"], errors.evidence["baseline"]) == (371, 4)
    assert errors.changed_at == datetime(2024, 5, 1, 9, 58, tzinfo=UTC)  # the spike, not the lone 09:50 line
    assert errors.summary == "checkout: 371 error lines in 15m, baseline 4 (1h earlier)"
    assert errors.evidence["link"].startswith(f"{loki_replay.url}/loki/api/v1/query_range?query=")
    patterns = found["error_patterns"].evidence["patterns"]
    assert patterns[0]["count"] == 4 and "order_id=<n> upstream=<ip>" in patterns[0]["template"]
    # The window asked for is the one configured, in nanoseconds.
    path, params = loki_replay.requests[0]
    assert path == "/loki/api/v1/query_range"
    assert int(params["end"]) - int(params["start"]) == 15 * 60 * 10**9 and params["step"] == "60"
    assert [r[1].get("direction") for r in loki_replay.requests] == [None, None, None, "backward", None]


async def test_loki_without_lines_for_the_selector_is_no_data_naming_it(loki_replay) -> None:
    settings = _loki_settings(loki_replay.url, service_label="service")
    done = _done(await _run(settings, "checkout", clock=FakeClock(LOKI_NOW)), "loki")
    assert done.outcome == "no_data"
    assert done.error == ('no log lines for checkout in the window 2024-05-01T09:46:00Z/2024-05-01T10:01:00Z: '
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


def _k8s_settings(host: str | None, edges: tuple[str, ...] = (), **kubernetes) -> Settings:
    return Settings(correlation={"sources": ["kubernetes"], "backoff_base_s": 0.01, "window": "16m", "settle": "0s",
                                 "kubernetes": {"host": host, "namespace": "shop"} | kubernetes},
                    topology={"edges": list(edges), "discovery": []})


async def test_kubernetes_rollout_crash_loop_and_warnings(kubernetes_api) -> None:
    commands = await _run(_k8s_settings(kubernetes_api.url, edges=("checkout -> payments", "checkout -> search")),
                          "checkout", clock=FakeClock(LOKI_NOW), opened_at=LOKI_NOW)
    done = _done(commands, "kubernetes")
    assert done.outcome == "succeeded" and done.attempts == 7  # search runs no pods here: no problem
    assert done.queries == [
        "GET /api/v1/namespaces/shop/pods?labelSelector=app%3Dcheckout",
        "GET /apis/apps/v1/namespaces/shop/replicasets?labelSelector=app%3Dcheckout",
        "GET /api/v1/namespaces/shop/events?fieldSelector=type%3DWarning",  # once, for every service
        "GET /api/v1/namespaces/shop/pods?labelSelector=app%3Dpayments",
        "GET /apis/apps/v1/namespaces/shop/replicasets?labelSelector=app%3Dpayments",
        "GET /api/v1/namespaces/shop/pods?labelSelector=app%3Dsearch",
        "GET /apis/apps/v1/namespaces/shop/replicasets?labelSelector=app%3Dsearch",
    ]
    asked = {}
    for path, params in kubernetes_api.requests:
        asked.setdefault(path, params)
    assert asked["/api/v1/namespaces/shop/pods"]["labelSelector"] == "app=checkout"
    assert asked["/api/v1/namespaces/shop/events"]["fieldSelector"] == "type=Warning"
    findings = [c for c in commands if isinstance(c, RecordFinding)]
    found = {f.kind: f for f in findings if f.service == "checkout"}
    assert set(found) == {"rollout", "crash_loop", "oom_killed", "container_restarts", "pods_not_ready",
                          "warning_events"}
    assert found["rollout"].evidence["revision"] == "4" and found["rollout"].evidence["service"] == "checkout"
    assert all(f.signal == f.kind for f in findings)
    dependency = {f.kind: f for f in findings if f.service == "payments"}
    assert dependency and set(dependency) <= set(found) | {"rollout"}
    assert {f.finding_id for f in findings} == {f.finding_id for f in [*found.values(), *dependency.values()]}
    hypotheses = {h.service: h for h in commands[-1].hypotheses}
    assert set(hypotheses) == {"checkout", "payments"}
    assert set(hypotheses["checkout"].evidence) == {f.finding_id for f in found.values()}
    assert hypotheses["checkout"].started_at == datetime(2024, 5, 1, 9, 57, 40, tzinfo=UTC)
    assert hypotheses["payments"].path == ["payments", "checkout"]


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
        await _above(prometheus, f"count_over_time(({_render(REQUEST_RATE, service)})[10s:1s])", 3,
                     "a few seconds of traffic")
        settings = _settings(sources=["prometheus", "kubernetes"], prometheus={"url": prometheus.url})
        [prom, k8s] = await probe_sources(settings, service)
    assert prom["outcome"] == "no_data"  # no 5xx yet: the error-rate ratio has no series
    assert prom["error"].startswith("errors: no series for ") and "traffic" not in prom["error"]
    assert prom["label_values"]["label"] == "service" and prom["label_values"]["has_service"]
    assert k8s["outcome"] == "unavailable"
