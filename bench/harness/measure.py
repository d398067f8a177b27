"""What a benchmark reports: JSON lines, CPU and memory of processes, latency
percentiles, and the machine's load while a row runs (the machine is shared)."""

from __future__ import annotations

import json
import os
import shlex
import statistics
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

CLOCK_TICK = os.sysconf("SC_CLK_TCK")
ROOT = Path(__file__).resolve().parents[2]
SAMPLE_S = 1.0


def emit(**fields: object) -> None:
    """One JSON object on its own line of stdout."""
    print(json.dumps(fields), flush=True)


def _stat(pid: int) -> list[bytes] | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            # The command name may hold spaces and parentheses: split after the last ')'.
            return fh.read().rsplit(b")", 1)[1].split()
    except OSError:
        return None


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process and its reaped children so far (0 once it is gone)."""
    fields = _stat(pid)
    return sum(int(v) for v in fields[11:15]) / CLOCK_TICK if fields else 0.0


def _all_stats() -> dict[int, list[bytes]]:
    return {int(entry.name): fields for entry in os.scandir("/proc")
            if entry.name.isdigit() and (fields := _stat(int(entry.name)))}


def _tree(stats: dict[int, list[bytes]], root: int) -> list[int]:
    """`root` and its live descendants (children may have left the process group:
    PostgreSQL's backends call setsid)."""
    children: dict[int, list[int]] = {}
    for pid, fields in stats.items():
        children.setdefault(int(fields[1]), []).append(pid)
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        if pid in stats:
            found.append(pid)
        todo.extend(children.get(pid, []))
    return found


def tree_cpu_seconds(pid: int) -> float:
    """CPU time of a process, its reaped children and every live descendant so far
    (a database's backends, a launcher's children)."""
    stats = _all_stats()
    return sum(sum(int(v) for v in stats[p][11:15]) for p in _tree(stats, pid)) / CLOCK_TICK


def rss_bytes(pid: int) -> int:
    """Resident memory of a process now."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


class CpuMeter:
    """Cores each named process used from `start()` to `cores()`: with every descendant
    for `trees` (a database's backends), the process alone for `alone` (the benchmark
    itself, whose descendants are the servers)."""

    def __init__(self, trees: dict[str, int], alone: dict[str, int] | None = None) -> None:
        self.trees, self.alone = trees, alone or {}
        self.start()

    def _now(self) -> dict[str, float]:
        return ({name: tree_cpu_seconds(pid) for name, pid in self.trees.items()}
                | {name: cpu_seconds(pid) for name, pid in self.alone.items()})

    def start(self) -> None:
        self._began = time.perf_counter()
        self._before = self._now()

    def cores(self) -> dict[str, float]:
        elapsed = max(time.perf_counter() - self._began, 1e-6)
        return {name: round((spent - self._before[name]) / elapsed, 3) for name, spent in self._now().items()}


def percentiles(samples_s: list[float]) -> dict[str, float | int | None]:
    """Nearest-rank p50/p90/p99, max and mean of durations in seconds, in milliseconds."""
    if not samples_s:
        return {"count": 0, "p50_ms": None, "p90_ms": None, "p99_ms": None, "max_ms": None, "mean_ms": None}
    ordered = sorted(samples_s)

    def at(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000, 2)

    return {"count": len(ordered), "p50_ms": at(0.50), "p90_ms": at(0.90), "p99_ms": at(0.99),
            "max_ms": round(ordered[-1] * 1000, 2), "mean_ms": round(statistics.fmean(ordered) * 1000, 2)}


def _busy_jiffies() -> int:
    with open("/proc/stat") as fh:
        fields = [int(v) for v in fh.readline().split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields[:8]
    return user + nice + system + irq + softirq + steal


def _own_tree() -> dict[int, int]:
    """CPU jiffies (user + system) of this process and every live descendant."""
    stats = _all_stats()
    return {pid: int(stats[pid][11]) + int(stats[pid][12]) for pid in _tree(stats, os.getpid())}


class MachineLoad:
    """Samples the machine in a thread while a row runs: the 1-minute load average, the
    cores busy, and how many of them went to processes outside this benchmark's own
    process tree (other people's work on a shared machine).

    A process of ours that exits between two samples loses at most its last second, so
    "outside" leans high by that much.
    """

    def __init__(self) -> None:
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._loadavg: list[float] = []
        self._began = time.monotonic()
        self._busy0 = _busy_jiffies()
        self._ours = 0
        self._seen = _own_tree()  # what our processes used before the row is not the row's
        self._loadavg_before = os.getloadavg()[0]
        self._loadavg.append(self._loadavg_before)
        self._thread = threading.Thread(target=self._run, name="machine-load", daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        with self._lock:
            self._loadavg.append(os.getloadavg()[0])
            tree = _own_tree()
            self._ours += sum(spent - self._seen.get(pid, 0) for pid, spent in tree.items())
            self._seen = tree

    def _run(self) -> None:
        while not self._stop.wait(SAMPLE_S):
            self._sample()

    def summary(self) -> dict[str, object]:
        """Load so far (the row goes on being sampled)."""
        self._sample()
        seconds = max(time.monotonic() - self._began, 1e-6)
        busy = (_busy_jiffies() - self._busy0) / CLOCK_TICK / seconds
        ours = self._ours / CLOCK_TICK / seconds
        return {"cores": os.cpu_count(), "seconds": round(seconds, 1),
                "loadavg_1m": {"before": round(self._loadavg_before, 2), "max": round(max(self._loadavg), 2),
                               "now": round(self._loadavg[-1], 2)},
                "busy_cores": round(busy, 2), "outside_cores": round(max(busy - ours, 0.0), 2)}

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def code_version() -> str | None:
    """The commit being measured, "+changes" when tracked files differ from it (results aside)."""
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip()

    try:
        commit = git("rev-parse", "--short", "HEAD")
        changed = git("status", "--porcelain", "--untracked-files=no", "--", ".", ":!bench/out", ":!bench/RESULTS.md")
    except (OSError, subprocess.CalledProcessError):
        return None
    return f"{commit}+changes" if changed else commit


def emit_row(row: str, load: MachineLoad, value: dict[str, float | None],
             baseline: dict[str, dict[str, float | None]], **conditions: object) -> None:
    """The line `bench.report` reads: what was measured (`value`), each same-run baseline
    by name with the same keys, the conditions, the machine load, the command, and when
    and at which commit."""
    spec = getattr(sys.modules["__main__"], "__spec__", None)
    program = ["python", "-m", spec.name] if spec else ["python", sys.argv[0]]
    command = " ".join([*program, *map(shlex.quote, sys.argv[1:])])
    emit(row=row, value=value, baseline=baseline, conditions=conditions, load=load.summary(), command=command,
         measured_at=datetime.now(UTC).isoformat(timespec="seconds"), commit=code_version())
