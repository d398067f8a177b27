"""A scenario's series into a Prometheus TSDB: OpenMetrics text, then promtool."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from warroom.petshop.dataset import SeriesSamples
from warroom.servers import backfill_openmetrics

CHUNK = 20_000  # lines written at a time


@dataclass(frozen=True)
class Backfilled:
    series: int
    samples: int


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def write_openmetrics(all_series: Iterable[SeriesSamples], path: Path) -> Backfilled:
    """Every sample of `all_series` as OpenMetrics text with its timestamp, one gauge
    family per series name (the series of a family must arrive grouped)."""
    count = samples = 0
    family = None
    with path.open("w", encoding="utf-8") as out:
        for one in all_series:
            if one.name != family:
                family = one.name
                out.write(f"# TYPE {family} gauge\n")
            labels = ",".join(f'{key}="{_escape(value)}"' for key, value in sorted(one.labels.items()))
            head = f"{one.name}{{{labels}}} "
            lines = [f"{head}{value!r} {moment:.3f}\n" for moment, value in one.samples]
            for start in range(0, len(lines), CHUNK):
                out.writelines(lines[start:start + CHUNK])
            count += 1
            samples += len(lines)
        out.write("# EOF\n")
    return Backfilled(count, samples)


def backfill(all_series: Iterable[SeriesSamples], work: Path, tsdb: Path) -> Backfilled:
    """Write `all_series` into TSDB blocks under `tsdb`; the OpenMetrics text, kept in
    `work` meanwhile, is removed once the blocks exist."""
    text = work / "samples.om"
    try:
        written = write_openmetrics(all_series, text)
        backfill_openmetrics(text, tsdb, work / "promtool.log")
    finally:
        text.unlink(missing_ok=True)
    return written
