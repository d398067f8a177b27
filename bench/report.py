"""`bench/out/summary.json` from the rows' results, and `bench/RESULTS.md` from the summary
(SPEC §12): both generated, neither typed by hand.

    uv run python -m bench.report [--out bench/out] [--results bench/RESULTS.md] [ROW ...]

Each benchmark module ends its output with a row line (`bench.harness.measure.emit_row`):
what it measured, its same-run baselines by name, the conditions, the machine load and
its command. For each ROW named (default: every row) the summary's entry is rebuilt from
`<out>/<row>.jsonl`: "failed" when that run wrote no row line, "not run" when there is no
such file. The correlation row is read from `<evals>/eval-petshop-*.json` (written by
`bench/eval_petshop.sh` into `bench/out/`) against the published methods in the dataset's `BASELINES.md`.
Rows not named keep what the summary already holds. `RESULTS.md` is then written from
the summary alone. Targets, units and the text explaining each row live here, beside
SPEC §12; every number comes from the summary.
"""

from __future__ import annotations

import argparse
import json
import operator
import os
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

BENCH = Path(__file__).resolve().parent
BASELINE = "baseline"  # a bound meaning "every baseline's value of the same measure"
OPERATORS = {">=": operator.ge, "<=": operator.le}
SYMBOLS = {">=": "≥", "<=": "≤"}


@dataclass(frozen=True)
class Measure:
    """One number of a row, its unit, and the conditions the target puts on it."""

    key: str
    label: str  # before the number in the table ("p99 480 ms"); may be empty
    unit: str
    target: tuple[tuple[str, float | str], ...] = ()
    name: str = ""  # what "met when" calls it, when the label is empty or says too little

    @property
    def called(self) -> str:
        return self.name or self.label or self.key


@dataclass(frozen=True)
class Row:
    """A row of SPEC §12: what it measures, its target, and what the numbers mean."""

    key: str
    what: str
    target: str
    measures: tuple[Measure, ...]
    explanation: str


def throughput(unit: str, floor: float) -> tuple[Measure, ...]:
    return (Measure("throughput", "", unit, ((">=", floor),), name="throughput"),)


def latency(p50: float, p99: float, rate: float) -> tuple[Measure, ...]:
    return (Measure("p50_ms", "p50", "ms", (("<=", p50),)), Measure("p99_ms", "p99", "ms", (("<=", p99),)),
            Measure("rate", "at", "commands/s", ((">=", rate),)))


ROWS = (
    Row("decider", "decider throughput, one worker", "≥ 10,000 commands/s", throughput("commands/s", 10_000),
        "The decider agent alone in one Faust worker, on a backlog of commands (a realistic mix: opened, "
        "acknowledged, notes, one rejected transition, resolved). Throughput counts from the first record it "
        "produced to the last, by broker timestamps, so start-up and group joins are left out. Baselines on "
        "the same records and broker: a raw aiokafka consume+produce loop, a naive Faust agent deciding one "
        "command at a time, and Faust forwarding records unchanged (its own per-record cost)."),
    Row("projector", "projector throughput into read models", "≥ 20,000 events/s",
        throughput("events/s", 20_000),
        "One projector on a backlog of a synthetic event log, into every read model, from its first "
        "committed batch to the last. Baseline: a raw asyncpg COPY of the same timeline rows, prepared "
        "beforehand (no Kafka, no decoding, one table): the floor PostgreSQL sets."),
    Row("replay", "replay rebuild", "≥ 50,000 events/s", throughput("events/s", 50_000),
        "`warroom replay`'s rebuild of every read model from offset 0 into a fresh schema, verified as it "
        "reads; the best of the rebuilding process counts tried. Baseline: the same raw COPY as the "
        "projector row."),
    Row("command_to_sse", "command accepted → SSE delivered, Apache Kafka",
        "p50 ≤ 25 ms, p99 ≤ 100 ms at 1,000 commands/s", (
            *latency(25, 100, 1000), Measure("delivered", "delivered", "fraction", ((">=", 1.0),))),
        "Notes added over HTTP, open loop at the given rate, each timed from the request to its message on "
        "an open `/v1/stream` (gateway, decider, projector, commit, fan-out). A command not delivered "
        "within the drain time counts against `delivered`, not in the percentiles. Baseline: a raw "
        "produce → consume round trip at the same rate on the same broker."),
    Row("embedded", "command round trip on the embedded default (`warroom up`, Tansu)",
        "p50 ≤ 50 ms, p99 ≤ 150 ms at 20 commands/s", (
            *latency(50, 150, 20), Measure("answered", "answered 2xx", "fraction", ((">=", 1.0),))),
        "`warroom up` as a user starts it, then notes added over HTTP, open loop, each timed from the request "
        "to its 2xx answer. Baseline: a raw produce → consume round trip at the same rate on the Tansu "
        "broker `warroom up` started."),
    Row("fanout", "SSE fan-out, one gateway process", "10,000 clients, p99 ≤ 500 ms per broadcast, ≤ 30 KiB per client", (
        Measure("clients", "", "clients", ((">=", 10_000),), name="clients connected"),
        Measure("p50_ms", "p50", "ms"), Measure("p99_ms", "p99", "ms", (("<=", 500),), name="p99 per broadcast"),
        Measure("kib_per_client", "", "KiB/client", (("<=", 30),), name="gateway memory"),
        Measure("delivered", "delivered", "fraction", ((">=", 1.0),))),
        "One gateway process with that many SSE clients (a lean load client on raw asyncio sockets). Each "
        "broadcast is one note, timed from its commit (this benchmark's own LISTEN on the change feed) to "
        "the last client having it; one broadcast at a time. Memory per client is the gateway's RSS growth "
        "over the run divided by the clients. Baseline: a bare sse-starlette app broadcasting the same "
        "payload to the same clients, timed the same way."),
    Row("intake", "alert intake, whole worker (alerts → events)", "≥ 5,000 alerts/s",
        throughput("alerts/s", 5_000),
        "The worker's real topology (intake agents and decider) on a backlog of alerts keyed by service, "
        "from its first command to the last event (incidents opened, alerts attached and resolved). "
        "Baselines on the same records: a raw aiokafka consumer reading them, and Faust forwarding them "
        "unchanged. The intake agents alone (alerts → commands) are in the conditions."),
    Row("correlation", "correlation across services (§14)",
        "overall top-1 ≥ 0.75 and top-3 ≥ 0.90 on each PetShop scenario, and no lower than any published method",
        (Measure("top1", "top-1", "", ((">=", 0.75), (">=", BASELINE))),
         Measure("top3", "top-3", "", ((">=", 0.90), (">=", BASELINE)))),
        "`warroom eval petshop` over every case of each scenario (`bench/eval_petshop.sh`), the lowest "
        "scenario's overall top-1 and top-3 recall of the root cause. Baseline: the best published method "
        "on the same cases per measure, from the scenario's `BASELINES.md` (the authors' code)."),
)
BY_KEY = {row.key: row for row in ROWS}


# -- building the summary ------------------------------------------------------------


def holds(value: float | None, condition: tuple[str, float | str], baselines: dict, key: str) -> bool | None:
    """Whether `value` meets one condition; None when it cannot be told."""
    op, bound = condition
    bounds = [b.get(key) for b in baselines.values()] if bound == BASELINE else [bound]
    if value is None or not bounds or any(b is None for b in bounds):
        return None
    return all(OPERATORS[op](value, b) for b in bounds)


def met(row: Row, value: dict, baselines: dict) -> bool | None:
    """True when every condition of the target holds, False when one fails, else None."""
    verdicts = [holds(value.get(m.key), c, baselines, m.key) for m in row.measures for c in m.target]
    if False in verdicts:
        return False
    return None if None in verdicts else True


def ratios(value: dict, baselines: dict) -> dict:
    """Warroom ÷ baseline for every measure both have."""
    return {name: {k: round(value[k] / b, 4) for k, b in measured.items()
                   if isinstance(b, int | float) and b and isinstance(value.get(k), int | float)}
            for name, measured in baselines.items()}


def entry(row: Row, line: dict, measured_at: str) -> dict:
    """A measured row's summary entry from its row line (`measured_at` when it does not say)."""
    value = {m.key: line["value"].get(m.key) for m in row.measures}
    baselines = line.get("baseline") or {}
    return {"row": row.key, "what": row.what, "status": "measured", "value": value,
            "unit": {m.key: m.unit for m in row.measures}, "baseline": baselines, "ratio": ratios(value, baselines),
            "target": {m.key: [list(c) for c in m.target] for m in row.measures if m.target},
            "met": met(row, value, baselines), "load": line.get("load"), "conditions": line.get("conditions", {}),
            "command": line.get("command"), "measured_at": line.get("measured_at") or measured_at,
            "commit": line.get("commit")}


def not_measured(row: Row, status: str, error: str | None = None) -> dict:
    return {"row": row.key, "what": row.what, "status": status, "value": None,
            "unit": {m.key: m.unit for m in row.measures}, "baseline": None, "ratio": None,
            "target": {m.key: [list(c) for c in m.target] for m in row.measures if m.target},
            "met": None, "load": None, "conditions": {}, "command": None, "error": error}


def row_line(path: Path, key: str) -> dict | None:
    """The last row line for `key` in a module's output."""
    found = None
    for text in path.read_text().splitlines():
        try:
            line = json.loads(text)
        except json.JSONDecodeError:
            continue
        if isinstance(line, dict) and line.get("row") == key:
            found = line
    return found


def published(dataset: Path, scenario: str) -> dict[str, dict[str, float]]:
    """Overall top-1 / top-3 of each published method, from the scenario's `BASELINES.md`
    (in its directory, or one above it when its title names the scenario)."""
    for path in (dataset / "BASELINES.md", dataset.parent / "BASELINES.md"):
        if not path.is_file():
            continue
        text = path.read_text()
        if path.parent != dataset and f"`{scenario}`" not in text.splitlines()[0]:
            continue
        return parse_baselines(text)
    return {}


def parse_baselines(text: str) -> dict[str, dict[str, float]]:
    """{method: {"top1", "top3"}} from a Markdown table with "overall top-1/top-3" columns."""
    methods: dict[str, dict[str, float]] = {}
    columns: list[str] | None = None
    for line in text.splitlines():
        if not line.startswith("|"):
            columns = None
            continue
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if columns is None:
            columns = [cell.lower() for cell in cells]
            continue
        if set("".join(cells)) <= set("-: "):
            continue
        if "overall top-1" in columns and "overall top-3" in columns:
            methods[cells[0]] = {"top1": float(cells[columns.index("overall top-1")]),
                                 "top3": float(cells[columns.index("overall top-3")])}
    return methods


def correlation_line(evals: Path) -> dict | None:
    """The correlation row from the evaluations in `evals`, or None when none was run."""
    runs = sorted(evals.glob("eval-petshop-*.json"))
    if not runs:
        return None
    scenarios, best = {}, {}
    for path in runs:
        result = json.loads(path.read_text())
        scenario = path.stem.removeprefix("eval-petshop-")
        scenarios[scenario] = {"n": result["overall"]["n"], "top1": result["overall"]["top1"],
                               "top3": result["overall"]["top3"], "per_metric": result.get("scores", {})}
        dataset = Path(result["dataset"])
        for method, scores in published(dataset if dataset.is_absolute() else BENCH.parent / dataset, scenario).items():
            for key, score in scores.items():
                if score > best.get(key, (None, -1.0))[1]:
                    best[key] = (method, score)
    value = {key: min(s[key] for s in scenarios.values()) for key in ("top1", "top3")}
    baseline = {"best published method": {key: best[key][1] for key in ("top1", "top3") if key in best}}
    return {"row": "correlation", "value": value, "baseline": baseline if best else {},
            "conditions": {"scenarios": scenarios, "best_published": {k: m for k, (m, _) in best.items()}},
            "load": eval_load(runs), "command": "bench/eval_petshop.sh"}


def eval_load(runs: list[Path]) -> dict | None:
    """The load `bench/eval_petshop.sh` noted beside its results (`load before: 1.2 …`,
    `load after: …`, `wall time: N s`), over every scenario."""
    before, after, seconds = [], [], 0.0
    for run in runs:
        notes = run.with_suffix(".txt")
        if not notes.is_file():
            continue
        for line in notes.read_text().splitlines():
            label, _, rest = line.partition(":")
            words = rest.split()
            if label == "load before" and words:
                before.append(float(words[0]))
            elif label == "load after" and words:
                after.append(float(words[0]))
            elif label == "wall time" and words:
                seconds += float(words[0])
    if not before or not after:
        return None
    return {"cores": os.cpu_count(), "seconds": seconds,
            "loadavg_1m": {"before": before[0], "max": max(before + after), "now": after[-1]}}


def shown(path: Path) -> str:
    """`path` as seen from the repository's root, where the commands run."""
    try:
        return str(path.resolve().relative_to(BENCH.parent))
    except ValueError:
        return str(path)


def modified(path: Path) -> str:
    return datetime.fromtimestamp(path.stat().st_mtime, UTC).isoformat(timespec="seconds")


def build(row: Row, out: Path, evals: Path) -> dict:
    """The summary entry of `row` from what its run left in `out` (`evals` for the correlation row)."""
    if row.key == "correlation":
        line = correlation_line(evals)
        runs = sorted(evals.glob("eval-petshop-*.json"))
        if line is None:
            return not_measured(row, "not run", f"no {shown(evals)}/eval-petshop-*.json (bench/eval_petshop.sh writes it)")
        return entry(row, line, modified(runs[-1]))
    path = out / f"{row.key}.jsonl"
    if not path.is_file():
        return not_measured(row, "not run")
    line = row_line(path, row.key)
    if line is None:
        log = out / f"{row.key}.log"
        tail = log.read_text(errors="replace").strip().splitlines()[-3:] if log.is_file() else []
        return not_measured(row, "failed", " / ".join(tail) or "no row line in its output")
    return entry(row, line, modified(path))


def update(summary: dict, out: Path, evals: Path, keys: list[str]) -> dict:
    """`summary` with the entries of `keys` rebuilt from `out` (and `evals`); every row present, in SPEC order."""
    entries = {e["row"]: e for e in summary.get("rows", [])}
    for row in ROWS:
        if row.key in keys:
            entries[row.key] = build(row, out, evals)
        entries.setdefault(row.key, not_measured(row, "not run"))
    return {"generated_at": datetime.now(UTC).isoformat(timespec="seconds"), "machine": machine(),
            "rows": [entries[row.key] for row in ROWS]}


def machine() -> dict:
    pages = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    return {"cores": os.cpu_count(), "memory_gib": round(pages / 2**30, 1)}


# -- rendering -----------------------------------------------------------------------


def number(value: float | None, unit: str = "") -> str:
    if value is None:
        return "—"
    if unit == "fraction":
        return f"{value:.1%}".replace(".0%", "%")
    if float(value).is_integer():
        text = f"{int(value):,}"
    elif abs(value) >= 100:
        text = f"{value:,.0f}"
    elif abs(value) >= 10 or unit == "ms":
        text = f"{value:.1f}"
    else:
        text = f"{value:.3g}"
    return f"{text} {unit}".strip()


def measured(row: Row, values: dict | None) -> str:
    values = values or {}
    parts = [" ".join(p for p in (m.label, number(values.get(m.key), m.unit)) if p)
             for m in row.measures if m.key in values]
    return " · ".join(parts) or "—"


def condition_text(measure: Measure) -> str:
    return " and ".join(f"{SYMBOLS[op]} {'every baseline' if b == BASELINE else number(b, measure.unit)}"
                        for op, b in measure.target)


def load_text(load: dict | None) -> str:
    if not load:
        return "—"
    avg = load["loadavg_1m"]
    text = f"load avg {avg['before']:.1f}→{avg['max']:.1f} (max)"
    if "outside_cores" in load:
        text += f"; {load['outside_cores']:.1f} of {load['cores']} cores used by others"
    return text


def verdict(value: bool | None) -> str:
    return {True: "yes", False: "**no**", None: "—"}[value]


def cell(lines: list[str]) -> str:
    return "<br>".join(lines) or "—"


def conditions_text(conditions: dict) -> str:
    def show(value: object) -> str:
        if isinstance(value, dict):
            return "{" + ", ".join(f"{k}: {show(v)}" for k, v in value.items()) + "}"
        return str(value)

    return "; ".join(f"{k.replace('_', ' ')} {show(v)}" for k, v in conditions.items()) or "—"


def ratio_text(row: Row, values: dict) -> str:
    """`0.12×` for a row of one measure, else each ratio named (`p50 15.5× · p99 9.1×`)."""
    if len(row.measures) == 1:
        return " · ".join(f"{v:.3g}×" for v in values.values()) or "—"
    labels = {m.key: m.label or m.unit for m in row.measures}
    return " · ".join(f"{labels.get(k, k)} {v:.3g}×" for k, v in values.items()) or "—"


def render(summary: dict, source: str = "bench/out/summary.json") -> str:
    """RESULTS.md: a table of every row, then what each row measures and how to reproduce it."""
    cores, memory = summary["machine"]["cores"], summary["machine"]["memory_gib"]
    lines = [
        "# Benchmark results",
        "",
        f"Generated by `bench/report.py` from `{source}` (both written by `bench/run_all.sh`); "
        "do not edit by hand. Each row measures Warroom and, in the same run on the same servers, its "
        "baselines; the ratio is Warroom ÷ baseline (above 1 is slower for latencies, below 1 slower for "
        "throughputs). The machine is shared: the load column gives the 1-minute load average from the row's "
        "start to its peak and the cores that processes outside the benchmark used meanwhile, so a row "
        "measured on a busy machine can be told apart.",
        "",
        f"Machine: {cores} cores, {memory} GiB. Summary generated {summary['generated_at']}.",
        "",
        "| row (SPEC §12) | target | Warroom | baselines (same run) | ratio | met | load during the row |",
        "|---|---|---|---|---|---|---|",
    ]
    for item in summary["rows"]:
        row = BY_KEY[item["row"]]
        if item["status"] != "measured":
            lines.append(f"| {row.what} | {row.target} | {item['status']} | — | — | — | — |")
            continue
        names = list(item["baseline"])
        baselines = [f"{name}: {measured(row, item['baseline'][name])}" for name in names]
        ratio = [ratio_text(row, item["ratio"].get(name, {})) for name in names]
        lines.append(f"| {row.what} | {row.target} | {measured(row, item['value'])} | {cell(baselines)} | "
                     f"{cell(ratio)} | {verdict(item['met'])} | {load_text(item['load'])} |")
    for item in summary["rows"]:
        row = BY_KEY[item["row"]]
        lines += ["", f"## {row.what}", "", row.explanation, ""]
        lines.append("- Met when: " + "; ".join(f"{m.called} {condition_text(m)}"
                                                for m in row.measures if m.target) + ".")
        lines.append(f"- Reproduce: `bench/run_all.sh --row {row.key}`"
                     + (f", which runs `uv run {item['command']}`." if item.get("command") else "."))
        if item["status"] == "measured":
            lines.append(f"- Conditions: {conditions_text(item['conditions'])}.")
            lines.append(f"- Measured {item['measured_at']}" + (f" at commit {item['commit']}." if item.get("commit") else "."))
        else:
            lines.append(f"- {item['status'].capitalize()}" + (f": {item['error'].rstrip('.')}." if item.get("error") else "."))
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("rows", nargs="*", metavar="ROW", help=f"rows to rebuild (default all): {', '.join(BY_KEY)}")
    parser.add_argument("--out", type=Path, default=BENCH / "out", help="where the rows' results are")
    parser.add_argument("--evals", type=Path, default=BENCH / "out", help="where bench/eval_petshop.sh wrote")
    parser.add_argument("--results", type=Path, default=BENCH / "RESULTS.md", help="the Markdown to write")
    args = parser.parse_args(argv)
    unknown = [key for key in args.rows if key not in BY_KEY]
    if unknown:
        parser.error(f"unknown row {', '.join(unknown)}; rows are {', '.join(BY_KEY)}")
    path = args.out / "summary.json"
    previous = json.loads(path.read_text()) if path.is_file() else {}
    summary = update(previous, args.out, args.evals, args.rows or list(BY_KEY))
    path.write_text(json.dumps(summary, indent=2, ensure_ascii=False) + "\n")
    args.results.write_text(render(summary, shown(path)))
    print(f"wrote {shown(path)} and {shown(args.results)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
