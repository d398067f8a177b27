"""The shop's past: its normal traffic of the last hour, as Prometheus would have scraped it.

Correlation judges a fault by how far the analysis window departs from a baseline before
it, so a demo with no past cannot judge its first faults. The shop therefore starts
`HISTORY_S` ago and, before it serves, is moved to the present one scrape at a time
(`SCRAPE_INTERVAL_S`), by its own model with its own seed and rates: each scrape's samples
are kept with their timestamps, labelled `job` and `instance` as the live scrape labels
them, so the live series continue the generated ones. `warroom up --demo` turns the
OpenMetrics file into TSDB blocks with promtool before its Prometheus starts.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from warroom.demo.exposition import families
from warroom.demo.shop import Shop
from warroom.petshop.backfill import Backfilled, write_openmetrics
from warroom.petshop.dataset import SeriesSamples

HISTORY_S = 3600.0
"""How far back the generated past reaches: the demo's baseline (30 min) and some more."""

SCRAPE_INTERVAL_S = 5.0
"""How often the demo's Prometheus scrapes the shop, and the spacing of the past's samples."""

JOB = "demo-shop"
"""The scrape job of the demo's Prometheus: the `job` label of live and generated series."""


def record(shop: Shop, until: float, every_s: float, labels: Mapping[str, str]) -> list[SeriesSamples]:
    """Move `shop` to `until` one scrape every `every_s` (the last one at `until`) and
    return every series those scrapes saw, with `labels` added, grouped by metric name as
    OpenMetrics wants a family's samples together."""
    seen: dict[tuple[str, tuple[tuple[str, str], ...]], SeriesSamples] = {}
    for back in reversed(range(int((until - shop.clock) // every_s))):
        moment = until - back * every_s
        shop.advance(moment)
        for family in families(shop, moment):
            for sample in family.samples:
                key = (sample.name, tuple(sorted(sample.labels.items())))
                series = seen.get(key)
                if series is None:
                    series = seen[key] = SeriesSamples(sample.name, {**sample.labels, **labels})
                series.samples.append((moment, float(sample.value)))
    return sorted(seen.values(), key=lambda series: series.name)


def write(shop: Shop, until: float, path: Path, labels: Mapping[str, str],
          every_s: float = SCRAPE_INTERVAL_S) -> Backfilled:
    """`record` the shop's way to `until` into `path` as OpenMetrics text (every sample
    with its timestamp); how many series and samples were written."""
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_openmetrics(record(shop, until, every_s, labels), path)
