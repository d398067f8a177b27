"""The demo's generated past: the shop's own model lives through its last hour, and what
Prometheus would have scraped is written so that the live scrape continues the same series."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from warroom.demo import history
from warroom.demo.exposition import exposition, registry_for
from warroom.demo.shop import Shop
from warroom.demo.shop_server import LiveShop

T0 = 1_800_000_000.0
LABELS = {"job": history.JOB, "instance": "127.0.0.1:9464"}


def test_one_sample_per_scrape_up_to_now_labelled_as_the_live_scrape_labels_them() -> None:
    shop = Shop(T0 - 600, seed=2)
    recorded = history.record(shop, T0, 5.0, LABELS)

    assert shop.clock == T0
    scrapes = [T0 - 595 + 5 * i for i in range(120)]
    for series in recorded:
        moments = [t for t, _ in series.samples]
        # From the first scrape on, or from the one that first saw it (a first 5xx, say).
        assert moments == scrapes[-len(moments):], series.name
        assert series.labels.items() >= LABELS.items()
    assert sum(len(series.samples) == len(scrapes) for series in recorded) > 90
    names = [series.name for series in recorded]
    assert names == sorted(names)  # a metric family's series together, as OpenMetrics wants
    # The last scrape is what the live exposition shows at that moment, series for series.
    live = {(s.name, tuple(sorted({**s.labels, **LABELS}.items()))): s.value
            for family in text_string_to_metric_families(
                exposition(registry_for(shop, threading.Lock(), lambda: T0)).decode())
            for s in family.samples}
    assert {(s.name, tuple(sorted(s.labels.items()))): s.samples[-1][1] for s in recorded} == live


def test_the_past_is_normal_traffic_and_the_counters_only_grow() -> None:
    recorded = {(s.name, s.labels.get("service"), s.labels.get("status")): s
                for s in history.record(Shop(T0 - 3600, seed=0), T0, 5.0, LABELS)}

    served = recorded[("http_requests_total", "frontend", "200")].samples
    assert all(a[1] <= b[1] for a, b in zip(served, served[1:]))
    assert (served[-1][1] - served[0][1]) / 3600 == pytest.approx(20, rel=0.1)  # the shop's entry rate
    for (name, service, _), series in recorded.items():
        if name == "process_start_time_seconds":
            assert {v for _, v in series.samples} == {T0 - 3600}, service  # no restart
        if name == "build_info":
            assert len(series.samples) == 720, service  # one version throughout


def test_the_live_shop_starts_in_the_past_writes_it_and_keeps_its_schedule_from_now(tmp_path: Path) -> None:
    live = LiveShop(clock=lambda: T0, seed=1, past_s=history.HISTORY_S)
    path = tmp_path / "history.om"

    written = live.write_past(path, LABELS)

    scrapes = history.HISTORY_S / history.SCRAPE_INTERVAL_S
    assert written.series > 100 and written.series * scrapes * 0.99 < written.samples <= written.series * scrapes
    text = path.read_text()
    assert text.endswith("# EOF\n")
    assert f'process_start_time_seconds{{instance="127.0.0.1:9464",job="demo-shop",service="payments"}} ' \
           f'{T0 - history.HISTORY_S!r} {T0:.3f}\n' in text
    assert live.shop.clock == T0
    assert all(s["started_at"] == T0 - history.HISTORY_S for s in live.state()["services"].values())
    first = live.schedule.next
    assert (first.at, first.service, first.kind) == (T0 + 20, "payments", "bad-deploy")
