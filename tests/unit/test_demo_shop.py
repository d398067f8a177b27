"""The demo shop's physics: a fault on a leaf moves its callers by the right amounts,
clear restores them, and the metrics are what Prometheus and the alert rules expect.

Most tests run two shops of one seed side by side, one of them faulted: every service
visit draws the same random numbers whatever its state, so the two see the very same
requests and any difference is the fault's doing."""

from __future__ import annotations

import threading
from dataclasses import replace

import pytest
from prometheus_client.parser import text_string_to_metric_families

from warroom.demo.exposition import exposition, registry_for
from warroom.demo.faults import ADDED_LATENCY_S, BAD_DEPLOY_ERROR_RATE, CRASH_DOWN_S, CRASH_UP_S, heal, inject
from warroom.demo.shop import SHOP, Shop, Telemetry

T0 = 1_800_000_000.0
WARM_S = 60.0
WINDOW_S = 600.0
QUIET = tuple(replace(spec, base_error=0.0) for spec in SHOP)


def twins(seed: int = 7, **options: object) -> tuple[Shop, Shop]:
    """Two identical shops, warmed up for a minute; no errors of their own, no latency noise."""
    options = {"specs": QUIET, "noise": 0.0, **options}
    pair = Shop(T0, seed=seed, **options), Shop(T0, seed=seed, **options)
    for shop in pair:
        shop.advance(T0 + WARM_S)
    return pair


def counts(shop: Shop) -> dict[str, dict[str, float]]:
    """What each service has served so far, and every edge's calls and failures."""
    out: dict[str, dict[str, float]] = {}
    for name, t in shop.telemetry.items():
        out[name] = {"requests": t.count, "errors": sum(c for s, c in t.requests.items() if s >= 500),
                     "latency_s": t.duration_sum_s}
    for (client, server), edge in shop.edges.items():
        out[f"{client}->{server}"] = {"calls": edge.calls, "failed": edge.failed}
    return out


def moved(before: dict, after: dict) -> dict[str, dict[str, float]]:
    return {key: {k: after[key][k] - before[key].get(k, 0) for k in after[key]} for key in after}


def with_fault(service: str, kind: str) -> tuple[Shop, Shop, dict, dict]:
    """Twins, one given `kind` on `service`, after `WINDOW_S`: both shops and what each
    served in that window."""
    healthy, faulty = twins()
    start = T0 + WARM_S
    inject(faulty, service, kind, start)
    before_h, before_f = counts(healthy), counts(faulty)
    healthy.advance(start + WINDOW_S)
    faulty.advance(start + WINDOW_S)
    return healthy, faulty, moved(before_h, counts(healthy)), moved(before_f, counts(faulty))


def test_added_latency_on_a_leaf_adds_to_every_caller_that_waited_for_it() -> None:
    healthy, faulty, h, f = with_fault("payments", "latency")

    payments_calls = f["checkout->payments"]["calls"]
    assert payments_calls == h["checkout->payments"]["calls"] > 2000  # the same requests in both shops
    assert f["payments"]["latency_s"] - h["payments"]["latency_s"] == pytest.approx(ADDED_LATENCY_S * payments_calls)
    # Every checkout request waits for payments; a frontend request only when it went through checkout.
    assert f["checkout"]["latency_s"] - h["checkout"]["latency_s"] == pytest.approx(ADDED_LATENCY_S * payments_calls)
    assert f["frontend"]["latency_s"] - h["frontend"]["latency_s"] == pytest.approx(
        ADDED_LATENCY_S * f["frontend->checkout"]["calls"])
    # The services that never call payments do not notice.
    for service in ("search", "inventory"):
        assert f[service] == h[service]
    # And the faulty one burns a core; its callers only wait.
    assert faulty.telemetry["payments"].cpu_s - healthy.telemetry["payments"].cpu_s > 0.9 * WINDOW_S
    assert faulty.telemetry["checkout"].cpu_s == pytest.approx(healthy.telemetry["checkout"].cpu_s)


def test_errors_on_a_leaf_fail_its_callers_by_their_share() -> None:
    _, _, h, f = with_fault("payments", "bad-deploy")

    assert h["checkout"]["errors"] == h["frontend"]["errors"] == 0
    payments_ratio = f["payments"]["errors"] / f["payments"]["requests"]
    assert payments_ratio == pytest.approx(BAD_DEPLOY_ERROR_RATE, abs=0.04)
    # checkout passes on every failed payment (share 1), frontend every failed checkout.
    assert f["checkout->payments"]["failed"] == f["payments"]["errors"]
    assert f["checkout"]["errors"] == f["payments"]["errors"]
    assert f["frontend->checkout"]["failed"] == f["frontend"]["errors"] == f["checkout"]["errors"]
    for service in ("search", "inventory"):
        assert f[service] == h[service]


def test_a_callee_that_degrades_gracefully_fails_only_its_share() -> None:
    # search shows cached stock for half of inventory's failures (fail_share 0.5).
    _, _, _, f = with_fault("inventory", "bad-deploy")
    failed_calls = f["search->inventory"]["failed"]
    assert failed_calls > 300
    assert f["search"]["errors"] / failed_calls == pytest.approx(0.5, abs=0.06)
    assert f["checkout"]["errors"] == f["checkout->inventory"]["failed"]  # checkout cannot do without stock


def test_clear_restores_the_healthy_shop_request_for_request() -> None:
    healthy, faulty = twins()
    start = T0 + WARM_S
    for kind in ("bad-deploy", "latency"):
        inject(faulty, "payments", kind, start)
        faulty.advance(start + 120)
        healthy.advance(start + 120)
        heal(faulty, "payments", start + 120)
        assert faulty.processes["payments"].version == SHOP[3].version
        before_h, before_f = counts(healthy), counts(faulty)
        healthy.advance(start + 300)
        faulty.advance(start + 300)
        h, f = moved(before_h, counts(healthy)), moved(before_f, counts(faulty))
        for key in set(f) - {"payments"}:  # payments restarted at the rollback: counters from zero
            assert f[key] == pytest.approx(h[key]), key
        start += 300


def test_a_bad_deploy_rolls_out_a_new_version_and_clear_rolls_it_back() -> None:
    shop = Shop(T0, seed=1)
    inject(shop, "payments", "bad-deploy", T0 + 10)
    process = shop.processes["payments"]
    assert (process.version, process.started_at, process.fault) == ("3.9.0", T0 + 10, "bad-deploy")
    heal(shop, "payments", T0 + 20)
    assert (process.version, process.started_at, process.fault) == ("3.8.0", T0 + 20, None)
    inject(shop, "payments", "bad-deploy", T0 + 30)
    assert process.version == "3.10.0"  # each bad rollout is a version of its own


def test_a_crash_loop_restarts_the_process_and_its_callers_fail_while_it_is_down() -> None:
    shop = Shop(T0, seed=2, specs=QUIET)
    shop.advance(T0 + WARM_S)
    start = T0 + WARM_S
    inject(shop, "payments", "crash-loop", start)
    period = CRASH_DOWN_S + CRASH_UP_S
    starts = []
    for second in range(1, 100):
        shop.advance(start + second)
        if not starts or shop.processes["payments"].started_at != starts[-1]:
            starts.append(shop.processes["payments"].started_at)
    assert starts[1:] == [start + CRASH_DOWN_S + k * period for k in range(5)]
    assert shop.telemetry["checkout"].requests.get(503, 0) > 0  # connection refused while down
    # A process that is down exposes nothing; cleared, it starts at once and stays up.
    down_at = start + 5 * period + 1
    shop.advance(down_at)
    assert not shop.up("payments", down_at)
    exposed = scrape(shop, down_at)
    assert not [key for series in exposed.values() for key in series if key.split(":")[0] == "payments"]
    assert exposed["traces_service_graph_request_total"]["checkout->payments"] > 0  # the tracer still counts
    heal(shop, "payments", down_at)
    assert shop.up("payments", down_at) and shop.processes["payments"].started_at == down_at
    shop.advance(down_at + 300)
    assert shop.processes["payments"].started_at == down_at


def test_at_rest_no_alert_rule_threshold_is_crossed() -> None:
    shop = Shop(T0, seed=11)
    marks = {}
    for minute in range(1, 11):
        shop.advance(T0 + 60 * minute)
        marks[minute] = {name: (t.count, t.requests.get(200, 0), t.buckets[:7]) for name, t in shop.telemetry.items()}
    for name in shop.specs:
        total, ok, fast = marks[10][name][0], marks[10][name][1], sum(marks[10][name][2])
        assert 1 - ok / total < 0.05, f"{name}: error ratio {1 - ok / total:.3f} at rest"
        assert fast / total > 0.95, f"{name}: p95 above 0.5 s at rest"
    # Traffic is noisy: requests per minute at the frontend vary.
    per_minute = [marks[m]["frontend"][0] - marks[m - 1]["frontend"][0] for m in range(2, 11)]
    assert len(set(per_minute)) > 5 and min(per_minute) > 0.7 * 1200 and max(per_minute) < 1.3 * 1200


def scrape(shop: Shop, now: float) -> dict[str, dict[str, float]]:
    """The exposition parsed as Prometheus reads it: {metric name: {service or edge: value}}."""
    text = exposition(registry_for(shop, threading.Lock(), lambda: now)).decode()
    out: dict[str, dict[str, float]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            key = sample.labels.get("service") or f"{sample.labels.get('client')}->{sample.labels.get('server')}"
            if "status" in sample.labels:
                key = f"{key}:{sample.labels['status']}"
            out.setdefault(sample.name, {})[key] = sample.value
    return out


def test_the_exposition_has_every_metric_the_rules_and_correlation_query() -> None:
    shop = Shop(T0, seed=3)
    inject(shop, "checkout", "bad-deploy", T0 + 30)
    metrics = scrape(shop, T0 + 90)
    assert set(metrics) >= {"http_requests_total", "http_request_duration_seconds_bucket",
                            "http_request_duration_seconds_count", "http_request_duration_seconds_sum",
                            "process_start_time_seconds", "process_cpu_seconds_total", "build_info",
                            "traces_service_graph_request_total", "traces_service_graph_request_failed_total"}
    assert set(metrics["process_start_time_seconds"]) == set(shop.specs)
    assert metrics["process_start_time_seconds"]["checkout"] == T0 + 30
    assert metrics["traces_service_graph_request_total"].keys() == {
        "frontend->search", "frontend->checkout", "checkout->inventory", "checkout->payments", "search->inventory"}
    assert metrics["traces_service_graph_request_failed_total"]["frontend->checkout"] > 0
    assert metrics["http_requests_total"]["checkout:500"] > 0
    text = exposition(registry_for(shop, threading.Lock(), lambda: T0 + 90)).decode()
    assert 'build_info{service="checkout",version="1.32.0"} 1.0' in text


def test_the_same_seed_gives_the_same_traffic() -> None:
    def run(seed: int) -> bytes:
        shop = Shop(T0, seed=seed)
        inject(shop, "inventory", "crash-loop", T0 + 20)
        return exposition(registry_for(shop, threading.Lock(), lambda: T0 + 120))

    assert run(5) == run(5)
    assert run(5) != run(6)


def test_a_histogram_bucket_counts_requests_at_or_below_its_bound() -> None:
    telemetry = Telemetry()
    for latency in (0.004, 0.005, 0.3, 20.0):
        telemetry.observe(200, latency, 0.0)
    cumulative = dict(telemetry.cumulative())
    assert (cumulative["0.005"], cumulative["0.25"], cumulative["0.5"], cumulative["10.0"], cumulative["+Inf"]) == (
        2, 2, 3, 3, 4)
