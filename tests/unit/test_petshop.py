"""Reading a PetShop-format scenario and laying its cases out in one Prometheus (pure):
re-timed baselines, whole-day shifts without overlap, series per column, the eval's
signals and scores."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest

from contracts.common import SYSTEM
from contracts.events import ZERO_HASH, CorrelationCompleted, IncidentOpened
from contracts.hypotheses import Hypothesis
from foundation.chain import seal
from streams.correlation_agents import opening_run_id
from warroom.petshop.backfill import write_openmetrics
from warroom.petshop.dataset import (
    DAY_S,
    Column,
    DatasetError,
    place,
    read_scenario,
    read_table,
    series,
    series_name,
)
from warroom.petshop.evaluate import CaseResult, Watch, depth_covering, report_json, scores, signals_for
from foundation.topology import Edge, ServiceGraph

HEAD = ("microservice,a,a,b\nmetric,latency,availability,latency\nstatistic,Average,Average,p90\n"
        "unix_timestamp,,,\n")


def _table(path: Path, times: list[float], cells: str = "0.1,100,0.2") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(HEAD + "".join(f"{t},{cells}\n" for t in times))
    return path


def _scenario(root: Path, cases: dict[str, float]) -> Path:
    (root / "graph.csv").parent.mkdir(parents=True, exist_ok=True)
    (root / "graph.csv").write_text(",a,b\na,0,1\nb,0,0\n")
    _table(root / "noissue" / "metrics.csv", [1000.0 + 300 * i for i in range(10)])
    for name, first in cases.items():
        _table(root / name / "metrics.csv", [first + 300 * i for i in range(5)])
        (root / name / "target.json").write_text(json.dumps({
            "target": {"node": "a", "metric": "latency", "agg": "Average", "timestamp": first + 450},
            "root_cause": {"node": "b", "metric": None}}))
    return root


def test_a_table_reads_its_three_header_rows_and_empty_cells(tmp_path: Path) -> None:
    path = tmp_path / "m.csv"
    path.write_text(HEAD + "600.0,0.1,,0.3\n900.0,0.2,99.5,\n")
    table = read_table(path)
    assert table.columns == (Column("a", "latency", "Average"), Column("a", "availability", "Average"),
                             Column("b", "latency", "p90"))
    assert table.times == (600.0, 900.0) and table.rows == ((0.1, None, 0.3), (0.2, 99.5, None))
    assert table.step_s == 300


@pytest.mark.parametrize(("text", "why"), [
    ("a,b\n", "expected header rows"),
    (HEAD + "600.0,0.1\n", "line 5: 1 cells for 3 columns"),
    (HEAD + "600.0,x,1,2\n", "line 5"),
    (HEAD, "no rows"),
])
def test_a_bad_table_names_the_file_and_line(tmp_path: Path, text: str, why: str) -> None:
    path = tmp_path / "m.csv"
    path.write_text(text)
    with pytest.raises(DatasetError, match=why):
        read_table(path)


def test_a_scenario_lists_train_then_test_cases_in_number_order(tmp_path: Path) -> None:
    root = _scenario(tmp_path, {"test/issue_10": 9e6, "test/issue_2": 8e6, "train/issue_0": 7e6})
    scenario = read_scenario(root)
    assert [c.name for c in scenario.cases] == ["train/issue_0", "test/issue_2", "test/issue_10"]
    case = scenario.cases[0]
    assert (case.node, case.metric, case.statistic, case.root_cause) == ("a", "latency", "Average", "b")
    with pytest.raises(DatasetError, match="graph.csv is missing"):
        read_scenario(tmp_path / "nowhere")


def test_each_case_gets_the_normal_rows_right_before_it_and_days_of_its_own(tmp_path: Path) -> None:
    # Two cases an hour apart, as PetShop's are: laid out whole days apart, never overlapping.
    root = _scenario(tmp_path, {"train/issue_0": 5_000_000.0, "train/issue_1": 5_003_600.0})
    scenario = read_scenario(root)
    normal = read_table(scenario.normal)
    first, second = place(normal, scenario.cases)
    assert normal.times[-1] + first.normal_offset_s == first.issue.times[0] - 300  # one step before
    assert first.shift_s == 0 and second.shift_s % DAY_S == 0 and second.shift_s > 0
    assert second.start(normal) > first.end() + DAY_S - 1
    assert second.alert_at == 5_003_600.0 + 450 + second.shift_s

    laid = list(series(normal, [first, second]))
    assert [(s.name, s.labels) for s in laid] == [
        ("petshop_availability_percent", {"service": "a", "statistic": "Average"}),
        ("petshop_latency_seconds", {"service": "a", "statistic": "Average"}),
        ("petshop_latency_seconds", {"service": "b", "statistic": "p90"})]
    times = [t for t, _ in laid[1].samples]
    assert times == sorted(times) and len(times) == len(set(times)) == 2 * (10 + 5)
    assert times[9] + 300 == times[10] == first.issue.times[0]  # the case keeps its own timestamps


def test_openmetrics_groups_a_family_and_keeps_every_timestamp(tmp_path: Path) -> None:
    root = _scenario(tmp_path, {"train/issue_0": 5_000_000.0})
    scenario = read_scenario(root)
    normal = read_table(scenario.normal)
    written = write_openmetrics(series(normal, place(normal, scenario.cases)), tmp_path / "s.om")
    lines = (tmp_path / "s.om").read_text().splitlines()
    assert (written.series, written.samples) == (3, 45)
    assert lines[0] == "# TYPE petshop_availability_percent gauge" and lines[-1] == "# EOF"
    assert sum(line.startswith("# TYPE") for line in lines) == 2
    assert lines[1] == 'petshop_availability_percent{service="a",statistic="Average"} 100.0 4997000.000'


def test_series_names() -> None:
    assert series_name("latency") == "petshop_latency_seconds" and series_name("cpu load") == "petshop_cpu_load"


def test_the_eval_reads_each_metric_at_its_average_and_availability_down(tmp_path: Path) -> None:
    table = read_table(_table(tmp_path / "m.csv", [600.0]))
    assert signals_for([table]) == {"availability": ("petshop_availability_percent", "Average", "down"),
                                    "latency": ("petshop_latency_seconds", "Average", "up")}


def test_the_depth_covers_everything_below_the_symptoms() -> None:
    graph = ServiceGraph.of([Edge("a", "b"), Edge("b", "c"), Edge("c", "d"), Edge("x", "a")])
    assert depth_covering(graph, {"a"}) == 3 and depth_covering(graph, {"x"}) == 4


def _event(version: int, data, incident: uuid.UUID):
    return seal(event_id=uuid.uuid4(), incident_id=incident, version=version, data=data,
                occurred_at=datetime(2024, 1, 1, tzinfo=UTC), recorded_at=datetime(2024, 1, 1, tzinfo=UTC),
                causation_id=uuid.uuid4(), correlation_id=incident, actor=SYSTEM, prev_hash=ZERO_HASH)


def test_the_watch_takes_the_ranking_of_each_cases_opening_run() -> None:
    incident, other = uuid.uuid4(), uuid.uuid4()
    watch = Watch()
    opened = IncidentOpened(title="t", service="a", severity="high", labels={"petshop_case": "test/issue_1"})
    assert watch.add(_event(1, opened, incident)) is None
    assert watch.add(_event(1, IncidentOpened(title="t", service="z", severity="low"), other)) is None
    ranked = [Hypothesis(rank=n, service=s, signal="latency", confidence=0.5, path=[s])
              for n, s in enumerate(["b", "a", "b"], start=1)]
    assert watch.add(_event(2, CorrelationCompleted(run_id=uuid.uuid4(), outcome="succeeded"), incident)) is None
    done = CorrelationCompleted(run_id=opening_run_id(incident), outcome="succeeded", hypotheses=ranked)
    assert watch.add(_event(3, done, incident)) == "test/issue_1"
    assert watch.completed == {"test/issue_1": ["b", "a"]}


def test_scores_count_a_failed_case_as_a_miss(tmp_path: Path) -> None:
    cases = read_scenario(_scenario(tmp_path, {"train/issue_0": 5e6, "train/issue_1": 6e6,
                                               "test/issue_0": 7e6})).cases
    results = [CaseResult(cases[0], ["b", "a"]), CaseResult(cases[1], ["a", "x", "b"]),
               CaseResult(cases[2], [], "no CorrelationCompleted in time")]
    per_metric, overall = scores(results)
    assert overall == {"n": 3, "top1": 0.333, "top3": 0.667} and per_metric == {"latency": overall}
    answer = report_json(tmp_path, results)
    assert answer["cases"][2] == {"case": "test/issue_0", "metric": "latency", "root_cause": "b", "ranked": []}
