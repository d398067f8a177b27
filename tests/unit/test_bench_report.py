"""bench/report.py: rows' results → summary.json entries (ratio, met) → RESULTS.md."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench import report

LOAD = {"cores": 2, "seconds": 60.0, "loadavg_1m": {"before": 1.2, "max": 3.4, "now": 2.0},
        "busy_cores": 1.5, "outside_cores": 0.7}


def row_line(row: str, value: dict, baseline: dict, commit: str = "abc123", **conditions: object) -> dict:
    return {"row": row, "value": value, "baseline": baseline, "conditions": conditions, "load": LOAD,
            "command": f"python -m bench.{row} --quick-ish", "measured_at": "2030-01-02T03:04:05+00:00",
            "commit": commit}


def write_row(out: Path, line: dict, *before: dict) -> None:
    lines = [*before, line]
    (out / f"{line['row']}.jsonl").write_text("".join(json.dumps(item) + "\n" for item in lines))


def rows_of(summary: dict) -> dict[str, dict]:
    return {item["row"]: item for item in summary["rows"]}


@pytest.mark.parametrize(("rate", "expected"), [(12_000.0, True), (10_000.0, True), (9_999.9, False)])
def test_met_follows_a_throughput_floor(tmp_path: Path, rate: float, expected: bool) -> None:
    write_row(tmp_path, row_line("decider", {"throughput": rate}, {"raw loop": {"throughput": 24_000.0}}))

    decider = rows_of(report.update({}, tmp_path, tmp_path, ["decider"]))["decider"]

    assert decider["status"] == "measured"
    assert decider["met"] is expected
    assert decider["ratio"] == {"raw loop": {"throughput": round(rate / 24_000, 4)}}
    assert decider["target"] == {"throughput": [[">=", 10_000]]}
    assert decider["unit"] == {"throughput": "commands/s"}
    assert decider["load"] == LOAD


def test_every_condition_of_a_latency_row_must_hold(tmp_path: Path) -> None:
    baseline = {"raw round trip": {"p50_ms": 2.0, "p99_ms": 10.0}}
    fast_but_slow_rate = {"p50_ms": 10.0, "p99_ms": 50.0, "rate": 900.0, "delivered": 1.0}
    all_good = {"p50_ms": 10.0, "p99_ms": 50.0, "rate": 1000.0, "delivered": 1.0}
    one_lost = {"p50_ms": 10.0, "p99_ms": 50.0, "rate": 1000.0, "delivered": 0.999}
    results = {}
    for name, value in {"slow rate": fast_but_slow_rate, "good": all_good, "lost": one_lost}.items():
        write_row(tmp_path, row_line("command_to_sse", value, baseline))
        results[name] = rows_of(report.update({}, tmp_path, tmp_path, ["command_to_sse"]))["command_to_sse"]

    assert results["good"]["met"] is True
    assert results["slow rate"]["met"] is False
    assert results["lost"]["met"] is False
    assert results["good"]["ratio"] == {"raw round trip": {"p50_ms": 5.0, "p99_ms": 5.0}}


def test_a_missing_value_leaves_met_unknown_unless_another_condition_fails(tmp_path: Path) -> None:
    write_row(tmp_path, row_line("fanout", {"clients": 10_000, "p99_ms": None, "kib_per_client": 20.0,
                                            "delivered": 1.0}, {}))
    assert rows_of(report.update({}, tmp_path, tmp_path, ["fanout"]))["fanout"]["met"] is None

    write_row(tmp_path, row_line("fanout", {"clients": 10_000, "p99_ms": None, "kib_per_client": 45.0,
                                            "delivered": 1.0}, {}))
    assert rows_of(report.update({}, tmp_path, tmp_path, ["fanout"]))["fanout"]["met"] is False


def test_rows_without_results_are_not_run_and_a_run_without_a_row_line_failed(tmp_path: Path) -> None:
    (tmp_path / "replay.jsonl").write_text(json.dumps({"bench": "replay.setup", "events": 10}) + "\n")
    (tmp_path / "replay.log").write_text("Traceback (most recent call last):\nRuntimeError: broker gone\n")

    summary = report.update({}, tmp_path, tmp_path, list(report.BY_KEY))
    entries = rows_of(summary)

    assert [item["row"] for item in summary["rows"]] == [row.key for row in report.ROWS]
    assert entries["replay"]["status"] == "failed"
    assert "RuntimeError: broker gone" in entries["replay"]["error"]
    assert entries["decider"]["status"] == "not run"
    assert entries["decider"]["met"] is None and entries["decider"]["value"] is None
    markdown = report.render(summary)
    assert "| decider throughput, one worker | ≥ 10,000 commands/s | not run | — | — | — | — |" in markdown
    assert "| replay rebuild | ≥ 50,000 events/s | failed |" in markdown
    assert "- Not run." in markdown


def test_rows_not_named_keep_their_last_entry(tmp_path: Path) -> None:
    write_row(tmp_path, row_line("intake", {"throughput": 6_000.0}, {"raw consume": {"throughput": 200_000.0}},
                                 commit="aaa"))
    first = report.update({}, tmp_path, tmp_path, ["intake"])
    write_row(tmp_path, row_line("projector", {"throughput": 7_000.0}, {"COPY": {"throughput": 70_000.0}},
                                 commit="bbb"))
    (tmp_path / "intake.jsonl").unlink()

    second = rows_of(report.update(first, tmp_path, tmp_path, ["projector"]))

    assert second["intake"]["value"] == {"throughput": 6_000.0} and second["intake"]["commit"] == "aaa"
    assert second["intake"]["met"] is True
    assert second["projector"]["met"] is False and second["projector"]["commit"] == "bbb"


def test_the_last_row_line_counts(tmp_path: Path) -> None:
    earlier = row_line("intake", {"throughput": 1.0}, {})
    write_row(tmp_path, row_line("intake", {"throughput": 5_500.0}, {}), earlier, {"bench": "intake"})
    assert rows_of(report.update({}, tmp_path, tmp_path, ["intake"]))["intake"]["value"] == {"throughput": 5_500.0}


BASELINES_MD = """# Published methods on `low_traffic` (same 26 cases)

Some prose.

| method | overall top-1 | overall top-3 | latency top-1 / top-3 (n=14) |
|---|---|---|---|
| anomaly traversal | 0.615 | 0.769 | 0.571 / 0.571 |
| CIRCA | 0.385 | 0.923 | 0.357 / 0.857 |
| random walk | 0.000 | 0.038 | 0.000 / 0.071 |

To be ahead of every method here: overall top-1 ≥ 0.615 and top-3 ≥ 0.923.
"""


def eval_result(dataset: Path, top1: float, top3: float) -> dict:
    return {"dataset": str(dataset), "cases": [],
            "scores": {"latency": {"n": 14, "top1": top1, "top3": top3}},
            "overall": {"n": 26, "top1": top1, "top3": top3}}


@pytest.mark.parametrize(("top1", "top3", "expected"), [
    (0.80, 0.95, True),   # above the targets and every published method
    (0.70, 0.95, False),  # above every published top-1 (0.615) but under the 0.75 target
    (0.80, 0.91, False),  # above the 0.90 target but under CIRCA's top-3 (0.923)
])
def test_correlation_is_scored_against_the_targets_and_the_best_published_method(
        tmp_path: Path, top1: float, top3: float, expected: bool) -> None:
    petshop = tmp_path / "petshop"
    scenario = petshop / "low_traffic"
    scenario.mkdir(parents=True)
    (petshop / "BASELINES.md").write_text(BASELINES_MD)
    (tmp_path / "eval-petshop-low_traffic.json").write_text(json.dumps(eval_result(scenario, top1, top3)))

    entry = rows_of(report.update({}, tmp_path, tmp_path, ["correlation"]))["correlation"]

    assert entry["baseline"] == {"best published method": {"top1": 0.615, "top3": 0.923}}
    assert entry["conditions"]["best_published"] == {"top1": "anomaly traversal", "top3": "CIRCA"}
    assert entry["value"] == {"top1": top1, "top3": top3}
    assert entry["met"] is expected


def test_correlation_without_an_evaluation_is_not_run_and_without_baselines_unknown(tmp_path: Path) -> None:
    assert rows_of(report.update({}, tmp_path, tmp_path, ["correlation"]))["correlation"]["status"] == "not run"

    (tmp_path / "eval-petshop-other.json").write_text(json.dumps(eval_result(tmp_path / "nowhere", 0.9, 0.95)))
    entry = rows_of(report.update({}, tmp_path, tmp_path, ["correlation"]))["correlation"]
    assert entry["status"] == "measured" and entry["met"] is None


def test_markdown_shows_values_baselines_ratios_load_and_the_command(tmp_path: Path) -> None:
    write_row(tmp_path, row_line("embedded", {"p50_ms": 437.2, "p99_ms": 815.0, "rate": 20.0, "answered": 1.0},
                                 {"raw round trip on the same Tansu": {"p50_ms": 28.0, "p99_ms": 89.0}},
                                 commands=400))
    markdown = report.render(report.update({}, tmp_path, tmp_path, ["embedded"]))

    line = next(text for text in markdown.splitlines() if text.startswith("| command round trip on the embedded"))
    assert "p50 437 ms · p99 815 ms · at 20 commands/s · answered 2xx 100%" in line
    assert "raw round trip on the same Tansu: p50 28 ms · p99 89 ms" in line
    assert "p50 15.6× · p99 9.16×" in line
    assert "| **no** |" in line
    assert "load avg 1.2→3.4 (max); 0.7 of 2 cores used by others" in line
    assert "which runs `uv run python -m bench.embedded --quick-ish`" in markdown
    assert "commands 400" in markdown
    assert "Measured 2030-01-02T03:04:05+00:00 at commit abc123." in markdown


def test_correlation_takes_the_load_the_evaluation_noted(tmp_path: Path) -> None:
    (tmp_path / "eval-petshop-low_traffic.json").write_text(json.dumps(eval_result(tmp_path, 0.8, 0.95)))
    (tmp_path / "eval-petshop-low_traffic.txt").write_text(
        "load before: 1.50 2.00 2.10\nwall time: 312 s\nload after: 2.75 2.20 2.10\n")

    summary = report.update({}, tmp_path, tmp_path, ["correlation"])

    load = rows_of(summary)["correlation"]["load"]
    assert load["loadavg_1m"] == {"before": 1.5, "max": 2.75, "now": 2.75} and load["seconds"] == 312
    line = next(text for text in report.render(summary).splitlines() if text.startswith("| correlation"))
    assert "load avg 1.5→2.8 (max) |" in line
