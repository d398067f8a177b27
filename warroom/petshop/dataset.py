"""A PetShop-format scenario directory, read and laid out in time for one Prometheus (pure).

Layout (the PetShop dataset's): `graph.csv` (an adjacency matrix, rows call columns),
`noissue/metrics.csv` (normal operation), and `train|test/issue_N/{metrics.csv,target.json}`.
A `metrics.csv` has three header rows (`microservice`, `metric`, `statistic`), then a row
per period: first the period's start as a unix timestamp, then one cell per column
(empty: no value).

Each column becomes one series, `petshop_<metric>{service, statistic}`, sampled at the
rows' own timestamps. For each case, the scenario's normal rows are re-timed to end one
step before the case's first issue row, so they are its baseline; and each case is moved
by whole days so that no two cases overlap, letting every case share one Prometheus.
"""

from __future__ import annotations

import csv
import json
import math
import re
import statistics
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

DAY_S = 86_400
METRIC_NAMES = {"latency": "petshop_latency_seconds", "availability": "petshop_availability_percent",
                "requests": "petshop_requests"}
"""Series names of the metrics PetShop publishes; another metric is `petshop_<metric>`."""


class DatasetError(ValueError):
    """A directory that is not a PetShop-format scenario; the message names the file."""


def series_name(metric: str) -> str:
    return METRIC_NAMES.get(metric) or "petshop_" + (re.sub(r"[^A-Za-z0-9_]", "_", metric) or "value")


@dataclass(frozen=True, order=True)
class Column:
    service: str
    metric: str
    statistic: str


@dataclass(frozen=True)
class Table:
    """A metrics.csv: its columns, and per row the period's start and each column's value."""

    columns: tuple[Column, ...]
    times: tuple[float, ...]
    rows: tuple[tuple[float | None, ...], ...]

    @property
    def step_s(self) -> float:
        """The rows' spacing (their median gap), 300 s for PetShop."""
        gaps = [b - a for a, b in zip(self.times, self.times[1:]) if b > a]
        return statistics.median(gaps) if gaps else 300.0

    def column(self, which: Column) -> int | None:
        try:
            return self.columns.index(which)
        except ValueError:
            return None


def read_table(path: Path) -> Table:
    """One metrics.csv; DatasetError naming the file and line for what cannot be read."""
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            lines = list(csv.reader(handle))
    except OSError as err:
        raise DatasetError(f"cannot read {path}: {err}") from None
    if len(lines) < 4 or [row[0] if row else "" for row in lines[:3]] != ["microservice", "metric", "statistic"]:
        raise DatasetError(f"{path}: expected header rows microservice, metric, statistic")
    services, metrics, stats = (row[1:] for row in lines[:3])
    if not (len(services) == len(metrics) == len(stats)) or not services:
        raise DatasetError(f"{path}: the three header rows must have one cell per column")
    columns = tuple(Column(s.strip(), m.strip(), st.strip()) for s, m, st in zip(services, metrics, stats))
    times, rows = [], []
    for number, line in enumerate(lines[3:], start=4):
        if not line or not line[0].strip() or line[0].strip() == "unix_timestamp":
            continue
        if len(line) - 1 != len(columns):
            raise DatasetError(f"{path}, line {number}: {len(line) - 1} cells for {len(columns)} columns")
        try:
            times.append(float(line[0]))
            rows.append(tuple(_value(cell) for cell in line[1:]))
        except ValueError as err:
            raise DatasetError(f"{path}, line {number}: {err}") from None
    if not times:
        raise DatasetError(f"{path}: no rows")
    return Table(columns, tuple(times), tuple(rows))


def _value(cell: str) -> float | None:
    text = cell.strip()
    if not text:
        return None
    value = float(text)
    return value if math.isfinite(value) else None


@dataclass(frozen=True)
class Case:
    """One labelled issue: where and when the symptom was seen, and the true cause."""

    name: str  # e.g. "test/issue_3"
    directory: Path
    node: str
    metric: str
    statistic: str
    timestamp: float
    root_cause: str

    @property
    def metrics(self) -> Path:
        return self.directory / "metrics.csv"


def read_case(directory: Path, name: str) -> Case:
    path = directory / "target.json"
    try:
        target = json.loads(path.read_text(encoding="utf-8"))
        return Case(name=name, directory=directory, node=str(target["target"]["node"]),
                    metric=str(target["target"]["metric"]), statistic=str(target["target"].get("agg") or "Average"),
                    timestamp=float(target["target"]["timestamp"]), root_cause=str(target["root_cause"]["node"]))
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise DatasetError(f"cannot read the target of {path}: {type(err).__name__}: {err}") from None


def _natural(name: str) -> tuple:
    return tuple(int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name))


@dataclass(frozen=True)
class Scenario:
    directory: Path
    graph: Path
    normal: Path
    cases: tuple[Case, ...]


def read_scenario(directory: Path) -> Scenario:
    """The scenario in `directory`: train cases, then test cases, each in number order."""
    directory = Path(directory)
    graph, normal = directory / "graph.csv", directory / "noissue" / "metrics.csv"
    for required in (graph, normal):
        if not required.is_file():
            raise DatasetError(f"{directory} is not a PetShop-format scenario: {required} is missing")
    cases = []
    for split in ("train", "test"):
        root = directory / split
        if not root.is_dir():
            continue
        for issue in sorted((p for p in root.iterdir() if (p / "target.json").is_file()), key=lambda p: _natural(p.name)):
            cases.append(read_case(issue, f"{split}/{issue.name}"))
    if not cases:
        raise DatasetError(f"{directory} has no train/ or test/ issue with a target.json")
    return Scenario(directory, graph, normal, tuple(cases))


# --- laying the cases out in time -----------------------------------------------------


@dataclass(frozen=True)
class Placement:
    """Where one case sits in the shared Prometheus: its normal rows re-timed to end one
    step before its first issue row, then everything moved by `shift_s` (whole days)."""

    case: Case
    issue: Table
    normal_offset_s: float  # added to the normal rows' timestamps (before the shift)
    shift_s: int

    @property
    def alert_at(self) -> float:
        """When the symptom was seen, moved with the case."""
        return self.case.timestamp + self.shift_s

    def start(self, normal: Table) -> float:
        return normal.times[0] + self.normal_offset_s + self.shift_s

    def end(self) -> float:
        return self.issue.times[-1] + self.shift_s


def place(normal: Table, cases: tuple[Case, ...] | list[Case], issues: dict[str, Table] | None = None) -> list[Placement]:
    """Each case after the one before, at least a day of nothing between them."""
    placements: list[Placement] = []
    previous_end: float | None = None
    for case in cases:
        issue = issues[case.name] if issues else read_table(case.metrics)
        offset = (issue.times[0] - issue.step_s) - normal.times[-1]
        start = normal.times[0] + offset
        shift = 0
        if previous_end is not None:
            shift = max(0, math.ceil((previous_end + DAY_S - start) / DAY_S)) * DAY_S
        placement = Placement(case, issue, offset, shift)
        placements.append(placement)
        previous_end = placement.end()
    return placements


@dataclass
class SeriesSamples:
    """One series and its samples in time order, for the OpenMetrics writer."""

    name: str
    labels: dict[str, str]
    samples: list[tuple[float, float]] = field(default_factory=list)


def series(normal: Table, placements: list[Placement]) -> Iterator[SeriesSamples]:
    """Every column of the scenario as a series, its samples across all cases in time
    order (placements are in time order and never overlap). Grouped by series name, as
    OpenMetrics wants a metric family's samples together."""
    columns = sorted({c for c in normal.columns} | {c for p in placements for c in p.issue.columns},
                     key=lambda c: (series_name(c.metric), c))
    for column in columns:
        out = SeriesSamples(series_name(column.metric), {"service": column.service, "statistic": column.statistic})
        at_normal = normal.column(column)
        for placement in placements:
            if at_normal is not None:
                moved = placement.normal_offset_s + placement.shift_s
                out.samples.extend((t + moved, row[at_normal]) for t, row in zip(normal.times, normal.rows)
                                   if row[at_normal] is not None)
            at_issue = placement.issue.column(column)
            if at_issue is not None:
                out.samples.extend((t + placement.shift_s, row[at_issue])
                                   for t, row in zip(placement.issue.times, placement.issue.rows)
                                   if row[at_issue] is not None)
        if out.samples:
            yield out
