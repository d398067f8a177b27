"""`warroom eval petshop` through the real pipeline: promtool backfill, Debian's Prometheus,
Tansu, the worker; on the first cases of the published scenario (the shape of the
answer), and on a small scenario written here whose one fault two hops down must rank
first."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness.servers import REPO_ROOT, server_unavailable

pytestmark = pytest.mark.timeout(600)

DATASET_ENV = "WARROOM_PETSHOP_DIR"
SCENARIO = Path("datasets") / "petshop" / "low_traffic"


def _published_scenario() -> Path:
    """The PetShop `low_traffic` scenario: $WARROOM_PETSHOP_DIR, else `shared/` beside the checkout."""
    chosen = os.environ.get(DATASET_ENV)
    candidates = [Path(chosen)] if chosen else [p / "shared" / SCENARIO for p in REPO_ROOT.parents]
    for candidate in candidates:
        if (candidate / "graph.csv").is_file():
            return candidate
    server_unavailable("the PetShop dataset", f"no scenario at {', '.join(map(str, candidates))} "
                                              f"(set {DATASET_ENV})")


def _eval(directory: Path, *args: str) -> tuple[dict, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WARROOM_")}
    result = subprocess.run([sys.executable, "-m", "warroom", "eval", "petshop", str(directory), "--json", *args],
                            capture_output=True, text=True, timeout=540, cwd=REPO_ROOT, env=env)
    assert result.returncode == 0, result.stderr[-4000:]
    return json.loads(result.stdout), result.stderr


def test_the_first_cases_of_the_published_scenario_answer_in_the_spec_shape() -> None:
    directory = _published_scenario()
    answer, progress = _eval(directory, "--limit", "3")
    assert set(answer) == {"dataset", "cases", "scores", "overall"} and answer["dataset"] == str(directory)
    assert [c["case"] for c in answer["cases"]] == ["train/issue_0", "train/issue_1", "train/issue_2"]
    for case in answer["cases"]:
        assert set(case) == {"case", "metric", "root_cause", "ranked"}
        assert case["metric"] == "latency" and case["root_cause"] == "PetSearch_AWS::ECS::Fargate"
        assert case["ranked"] and all(isinstance(s, str) for s in case["ranked"])
        assert len(case["ranked"]) == len(set(case["ranked"]))
    assert set(answer["scores"]) == {"latency"}
    for score in (answer["scores"]["latency"], answer["overall"]):
        assert set(score) == {"n", "top1", "top3"} and score["n"] == 3
        assert 0 <= score["top1"] <= score["top3"] <= 1
    assert "[3/3]" in progress and "backfilled" in progress


# --- a scenario of our own ------------------------------------------------------------------

SERVICES = ["front", "mid", "leaf", "side"]
CALLS = {("front", "mid"), ("mid", "leaf"), ("front", "side")}
STATS = [("latency", "Average"), ("latency", "p90"), ("availability", "Average"), ("requests", "Sum")]
START = 1_700_000_000  # ≡ 200 mod 300: not on the query step, like PetShop's rows
STEP = 300


def _normal(service: str, metric: str, t: float) -> float:
    phase = SERVICES.index(service) + 1
    wave = math.sin(t / 3000.0 * phase) * math.cos(t / 1700.0)
    return {"latency": 0.1 * phase + 0.005 * wave, "availability": 100.0,
            "requests": 50.0 * phase + 2.0 * wave}[metric]


def _metrics_csv(path: Path, times: list[float], value) -> None:
    columns = [(s, m, st) for s in SERVICES for m, st in STATS]
    rows = [["microservice", *(c[0] for c in columns)], ["metric", *(c[1] for c in columns)],
            ["statistic", *(c[2] for c in columns)], ["unix_timestamp", *([""] * len(columns))]]
    rows += [[f"{t:.1f}", *(f"{value(s, m, t)!r}" for s, m, _ in columns)] for t in times]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(",".join(row) for row in rows) + "\n")


def _case(root: Path, name: str, first: float, metric: str, faulty: dict[str, float]) -> None:
    """Five issue rows from `first`; `faulty` scales the services' `metric` (the cause most)."""
    def value(service: str, m: str, t: float) -> float:
        normal = _normal(service, m, t)
        if m != metric or service not in faulty or t < first + STEP:
            return normal
        return normal * faulty[service]
    _metrics_csv(root / name / "metrics.csv", [first + STEP * i for i in range(5)], value)
    (root / name / "target.json").write_text(json.dumps({
        "target": {"node": "front", "metric": metric, "agg": "Average", "timestamp": first + 1.5 * STEP},
        "root_cause": {"node": "leaf", "metric": None}}))


def test_a_fault_two_hops_down_ranks_first(tmp_path: Path) -> None:
    root = tmp_path / "tiny"
    graph = [["", *SERVICES]] + [[a, *("1.0" if (a, b) in CALLS else "0.0" for b in SERVICES)] for a in SERVICES]
    root.mkdir()
    (root / "graph.csv").write_text("\n".join(",".join(row) for row in graph) + "\n")
    _metrics_csv(root / "noissue" / "metrics.csv", [START + STEP * i for i in range(400)], _normal)
    _case(root, "train/issue_0", START + 10 * 86_400, "latency", {"leaf": 20.0, "mid": 3.0, "front": 1.6})
    _case(root, "test/issue_0", START + 20 * 86_400, "availability", {"leaf": 0.5, "mid": 0.8, "front": 0.9})

    answer, _ = _eval(root)
    assert [(c["case"], c["ranked"][:1]) for c in answer["cases"]] == [
        ("train/issue_0", ["leaf"]), ("test/issue_0", ["leaf"])]
    assert "side" not in answer["cases"][0]["ranked"]  # normal all along
    assert answer["overall"] == {"n": 2, "top1": 1.0, "top3": 1.0}
    assert answer["scores"] == {"availability": {"n": 1, "top1": 1.0, "top3": 1.0},
                                "latency": {"n": 1, "top1": 1.0, "top3": 1.0}}
