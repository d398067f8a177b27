"""The demo shop against Debian's real Prometheus and Alertmanager: a fault on a leaf
fires the alert rules (on it and, through the physics, on its callers), Alertmanager
delivers them to a real local webhook receiver, and `clear` sends the resolution. The
shop's generated past, backfilled with promtool, is continued by the live scrape and
answers every signal correlation reads. Also the shop's HTTP control and `warroom demo
fault` talking to it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from harness.receiver import Receiver
from harness.servers import REPO_ROOT, start_or_give_up
from harness.waiting import wait_for
from streams.correlation.signals import signal_queries
from warroom.demo import history
from warroom.demo.shop import SERVICES
from warroom.demo.shop_server import LiveShop, ShopServer
from warroom.demo.stack import (
    alert_rules,
    correlation_overrides,
    start_demo_alertmanager,
    start_demo_prometheus,
    with_overrides,
)
from warroom.servers import HttpServer, ServerUnavailable, backfill_openmetrics
from foundation.settings import load_settings

pytestmark = pytest.mark.timeout(240)

TOKEN = "demo-ingest-token"
FIRE_TIMEOUT_S = 120  # scrape 1 s, rule window 20 s, for 5 s, Alertmanager group_wait 5 s: ~20 s when idle


@pytest.fixture()
def shop() -> Iterator[ShopServer]:
    server = ShopServer(LiveShop(seed=4, scheduled=False)).start()
    yield server
    server.close()


@pytest.fixture()
def receiver() -> Iterator[Receiver]:
    served = Receiver()
    yield served
    served.close()


@pytest.fixture()
def alertmanager(tmp_path: Path, receiver: Receiver) -> Iterator[HttpServer]:
    server = start_or_give_up("Alertmanager", lambda: start_demo_alertmanager(
        tmp_path / "alertmanager", webhook_url=f"{receiver.url}/v1/alerts/alertmanager", token=TOKEN))
    yield server
    server.stop()


@pytest.fixture()
def prometheus(tmp_path: Path, shop: ShopServer, alertmanager: HttpServer) -> Iterator[HttpServer]:
    server = start_or_give_up("Prometheus", lambda: start_demo_prometheus(
        tmp_path / "prometheus", shop=shop.target, alertmanager=f"{alertmanager.host}:{alertmanager.port}",
        scrape_interval="1s", rule_for="5s", rule_window="20s"))
    yield server
    server.stop()


def query(prometheus: HttpServer, expr: str, at: float | None = None) -> list[dict]:
    params = {"query": expr} | ({"time": f"{at:.3f}"} if at is not None else {})
    response = httpx.get(f"{prometheus.url}/api/v1/query", params=params, timeout=5)
    response.raise_for_status()
    return response.json()["data"]["result"]


def firing(prometheus: HttpServer) -> set[tuple[str, str]]:
    """(alertname, service) of every alert Prometheus has firing."""
    response = httpx.get(f"{prometheus.url}/api/v1/alerts", timeout=5)
    return {(a["labels"]["alertname"], a["labels"]["service"]) for a in response.json()["data"]["alerts"]
            if a["state"] == "firing"}


def notified(receiver: Receiver, status: str) -> set[tuple[str, str]]:
    """(alertname, service) of every alert the receiver was told is in `status`."""
    return {(alert["labels"]["alertname"], alert["labels"]["service"])
            for delivery in receiver.received() for alert in delivery.body["alerts"] if alert["status"] == status}


def inject(shop: ShopServer, service: str, kind: str) -> dict:
    response = httpx.post(f"{shop.url}/faults", json={"service": service, "kind": kind}, timeout=5)
    assert response.status_code == 200, response.text
    return response.json()


def scraped_with_rates(prometheus: HttpServer) -> None:
    # Two scrapes make a rate: from then on a healthy shop must fire nothing.
    wait_for(lambda: len(query(prometheus, 'sum by (service) (rate(http_requests_total[20s]))')) == 5,
             timeout=60, interval=0.5, message="Prometheus computing request rates of all five services")


def test_a_bad_deploy_on_a_leaf_fires_through_alertmanager_and_clear_resolves_it(
        shop: ShopServer, prometheus: HttpServer, receiver: Receiver) -> None:
    scraped_with_rates(prometheus)
    assert firing(prometheus) == set()
    inject(shop, "payments", "bad-deploy")

    wait_for(lambda: {("HighErrorRate", "payments"), ("HighErrorRate", "checkout")} <= notified(receiver, "firing"),
             timeout=FIRE_TIMEOUT_S, interval=0.5,
             message="Alertmanager delivering HighErrorRate on payments and checkout")
    delivery = next(d for d in receiver.received() if d.body["status"] == "firing")
    assert delivery.path == "/v1/alerts/alertmanager"
    assert delivery.headers["Authorization"] == f"Bearer {TOKEN}"
    assert delivery.body["version"] == "4"
    # Nothing fires on the services that do not call payments.
    assert {service for _, service in notified(receiver, "firing")} <= {"payments", "checkout", "frontend"}
    deployed = query(prometheus, 'build_info{service="payments"}')
    assert {r["metric"]["version"] for r in deployed} == {"3.9.0"}

    inject(shop, "payments", "clear")
    wait_for(lambda: {("HighErrorRate", "payments"), ("HighErrorRate", "checkout")} <= notified(receiver, "resolved"),
             timeout=FIRE_TIMEOUT_S, interval=0.5, message="Alertmanager delivering the resolution")
    assert ("HighErrorRate", "payments") not in firing(prometheus)


def test_latency_and_a_crash_loop_fire_their_own_rules(shop: ShopServer, prometheus: HttpServer) -> None:
    scraped_with_rates(prometheus)
    inject(shop, "payments", "latency")
    inject(shop, "search", "crash-loop")
    wanted = {("HighLatency", "payments"), ("HighLatency", "checkout"), ("CrashLooping", "search"),
              ("HighErrorRate", "frontend")}  # frontend: search down most of the time
    wait_for(lambda: wanted <= firing(prometheus), timeout=FIRE_TIMEOUT_S, interval=0.5,
             message=f"Prometheus firing {sorted(wanted)}")
    p95 = query(prometheus, 'histogram_quantile(0.95, sum by (le) (rate('
                            'http_request_duration_seconds_bucket{service="checkout"}[20s])))')
    assert float(p95[0]["value"][1]) > 1.0  # payments' added 1.2 s is checkout's too
    cpu = query(prometheus, 'max(rate(process_cpu_seconds_total{service="payments"}[20s]))')
    assert float(cpu[0]["value"][1]) > 0.8  # saturated: the faulty service burns a core, its callers only wait


def test_the_generated_past_is_backfilled_and_the_live_scrape_continues_its_series(tmp_path: Path) -> None:
    live = LiveShop(seed=4, scheduled=False, past_s=history.HISTORY_S)
    shop = ShopServer(live)
    past = tmp_path / "history.om"
    live.write_past(past, {"job": history.JOB, "instance": shop.target})
    shop.start()
    try:
        try:
            backfill_openmetrics(past, tmp_path / "prometheus" / "tsdb", tmp_path / "promtool.log")
        except ServerUnavailable as err:
            from harness.servers import server_unavailable

            server_unavailable("promtool (apt-get install prometheus)", err)
        prometheus = start_or_give_up("Prometheus", lambda: start_demo_prometheus(
            tmp_path / "prometheus", shop=shop.target, alertmanager=None))
        try:
            scrapes = history.HISTORY_S / history.SCRAPE_INTERVAL_S
            served = 'http_requests_total{service="payments",status="200"}'
            # One series: the live scrape's labels are the generated ones, so it carries on.
            continued = wait_for(lambda: (got := query(prometheus, f"count_over_time({served}[2h])"))
                                 and float(got[0]["value"][1]) > scrapes + 2 and got,
                                 timeout=60, interval=0.5, message="live scrapes adding to the generated series")
            assert len(continued) == 1 and continued[0]["metric"]["instance"] == shop.target
            assert float(query(prometheus, served, at=live.started_at - 3540)[0]["value"][1]) > 0
            # Every signal the demo's correlation reads answers for every service, in the past.
            settings = with_overrides(load_settings(), correlation_overrides(prometheus.url)).correlation.prometheus
            for service in SERVICES:
                for name, expr in signal_queries(settings, service).items():
                    assert query(prometheus, expr, at=live.started_at - 2700), f"{name} of {service}: no series"
            assert query(prometheus, "ALERTS") == []  # normal traffic, then and now
        finally:
            prometheus.stop()
    finally:
        shop.close()


def test_promtool_accepts_the_rules(tmp_path: Path) -> None:
    rules = tmp_path / "rules.yml"
    rules.write_text(json.dumps(alert_rules()))
    try:
        checked = subprocess.run(["promtool", "check", "rules", str(rules)], capture_output=True, text=True, timeout=60)
    except FileNotFoundError as err:
        from harness.servers import server_unavailable

        server_unavailable("promtool (apt-get install prometheus)", err)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS: 3 rules found" in checked.stdout


def test_the_shop_takes_faults_over_http_and_refuses_what_it_does_not_have(shop: ShopServer) -> None:
    metrics = httpx.get(f"{shop.url}/metrics", timeout=5)
    assert metrics.status_code == 200
    names = {family.name for family in text_string_to_metric_families(metrics.text)}
    assert {"http_requests", "traces_service_graph_request", "build_info"} <= names

    for body, field in (({"service": "cart", "kind": "latency"}, "service"),
                        ({"service": "payments", "kind": "meteor"}, "kind"),
                        ({"service": "payments"}, "kind"), ([1, 2], "body")):
        refused = httpx.post(f"{shop.url}/faults", json=body, timeout=5)
        assert refused.status_code == 422, body
        assert refused.headers["content-type"] == "application/problem+json"
        assert refused.json()["code"] == "validation_error"
        assert refused.json()["errors"][0]["field"] == field
    not_json = httpx.post(f"{shop.url}/faults", content=b"{", timeout=5)
    assert (not_json.status_code, not_json.json()["errors"][0]["field"]) == (422, "body")

    state = inject(shop, "inventory", "crash-loop")
    assert state["services"]["inventory"]["fault"] == "crash-loop"
    assert httpx.get(f"{shop.url}/faults", timeout=5).json()["services"]["inventory"]["up"] is False


def test_warroom_demo_fault_reaches_the_shop_through_the_data_dir(shop: ShopServer, tmp_path: Path) -> None:
    # What `warroom up --demo` writes: both files name the same `warroom up` (here, this process).
    (tmp_path / "stack.json").write_text(json.dumps({"pid": os.getpid()}))
    (tmp_path / "demo.json").write_text(json.dumps({"pid": os.getpid(), "shop": shop.url}))
    env = {k: v for k, v in os.environ.items() if not k.startswith("WARROOM_")}

    def demo_fault(*argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "warroom", "demo", "fault", *argv, "--data-dir", str(tmp_path)],
                              cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=60)

    done = demo_fault("--service", "payments", "--kind", "bad-deploy")
    assert done.returncode == 0, done.stderr
    printed = json.loads(done.stdout)
    assert (printed["service"], printed["kind"], printed["fault"], printed["version"]) == (
        "payments", "bad-deploy", "bad-deploy", "3.9.0")
    assert shop.live.state()["services"]["payments"]["fault"] == "bad-deploy"

    shop.close()
    gone = demo_fault("--service", "payments", "--kind", "clear")
    assert gone.returncode == 1 and "did not answer" in gone.stderr
