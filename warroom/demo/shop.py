"""The demo shop: five services that call each other, simulated request by request (pure).

A request enters at the frontend and is served by walking the call graph: each service
does its own work (a latency drawn around its median), calls the services this request
needs one after the other, and answers 500 when its own code fails, or 502/503 for a
share of the calls whose callee failed or was down. So a fault is felt physically
upstream: a callee's added latency is part of the latency of every caller that waited
for it, and its errors fail a share of its callers' requests.

No clock and no I/O: `Shop.advance(now)` serves every request that arrived until `now`,
from a seeded generator, so the same seed and the same calls give the same traffic. Each
service visit draws the same random numbers whatever its state, so two shops of one seed
stay comparable request by request when only a latency or an error rate differs.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
"""Upper bounds of the latency histogram in seconds (`+Inf` follows)."""

ENTRY_RPS = 20.0
"""Requests per second arriving at the frontend, on average."""

WAVE = (0.15, 600.0)
"""Traffic swells and ebbs by this fraction over this many seconds, so baselines move a little."""

IDLE_CPU = 0.02
"""CPU seconds per second a running process burns besides its requests."""

SATURATED_CPU = 0.95
"""CPU seconds per second of a saturated process (one core nearly full)."""

MAX_CATCH_UP_S = 600.0
"""A simulator paused for longer (a laptop asleep) skips the gap instead of replaying it."""


@dataclass(frozen=True)
class Call:
    """A dependency: `share` of the caller's requests call `callee`; `fail_share` of the
    calls that fail (an error, or the callee down) fail the caller's request too."""

    callee: str
    share: float
    fail_share: float = 1.0


@dataclass(frozen=True)
class ServiceSpec:
    """A service as deployed when healthy: its own median work per request, its version,
    what it calls, how often its own code fails and the CPU one request costs."""

    name: str
    work_s: float
    version: str
    calls: tuple[Call, ...] = ()
    base_error: float = 0.002
    cpu_per_request_s: float = 0.002


SHOP: tuple[ServiceSpec, ...] = (
    ServiceSpec("frontend", 0.008, "2.14.0", (Call("search", 0.6), Call("checkout", 0.25))),
    ServiceSpec("checkout", 0.020, "1.31.2", (Call("inventory", 1.0), Call("payments", 1.0))),
    ServiceSpec("search", 0.030, "4.2.1", (Call("inventory", 0.5, fail_share=0.5),)),
    ServiceSpec("payments", 0.045, "3.8.0"),
    ServiceSpec("inventory", 0.012, "1.9.4"),
)
"""frontend → search, checkout; checkout → inventory, payments; search → inventory (it
shows cached stock for half the failures)."""

SERVICES: tuple[str, ...] = tuple(spec.name for spec in SHOP)
ENTRY = "frontend"


def edges(specs: Iterable[ServiceSpec] = SHOP) -> list[tuple[str, str]]:
    """Every (caller, callee) of the shop, in declaration order."""
    return [(spec.name, call.callee) for spec in specs for call in spec.calls]


@dataclass(frozen=True)
class CrashLoop:
    """Down for `down_s`, then up for `up_s`, again and again, from `since`."""

    since: float
    down_s: float
    up_s: float

    @property
    def period_s(self) -> float:
        return self.down_s + self.up_s

    def down(self, t: float) -> bool:
        return (t - self.since) % self.period_s < self.down_s

    def restarts(self, after: float, until: float) -> list[float]:
        """The moments in (`after`, `until`] at which the process starts again."""
        first = max(0, math.floor((after - self.since - self.down_s) / self.period_s) + 1)
        moments = []
        k = first
        while (moment := self.since + self.down_s + k * self.period_s) <= until:
            if moment > after:
                moments.append(moment)
            k += 1
        return moments


@dataclass
class Process:
    """What runs for one service now: its version, since when, and what a fault does to it."""

    version: str
    started_at: float
    fault: str | None = None
    error_rate: float = 0.0
    extra_latency_s: float = 0.0
    saturated: bool = False
    crash_loop: CrashLoop | None = None
    deploys: int = 0

    def down(self, t: float) -> bool:
        return self.crash_loop is not None and self.crash_loop.down(t)


@dataclass
class Telemetry:
    """A process's counters since it started (a restart begins them again at zero)."""

    requests: dict[int, int] = field(default_factory=dict)
    buckets: list[int] = field(default_factory=lambda: [0] * (len(BUCKETS) + 1))
    duration_sum_s: float = 0.0
    cpu_s: float = 0.0

    @property
    def count(self) -> int:
        return sum(self.requests.values())

    def observe(self, status: int, latency_s: float, cpu_s: float) -> None:
        self.requests[status] = self.requests.get(status, 0) + 1
        index = next((i for i, bound in enumerate(BUCKETS) if latency_s <= bound), len(BUCKETS))
        self.buckets[index] += 1
        self.duration_sum_s += latency_s
        self.cpu_s += cpu_s

    def cumulative(self) -> list[tuple[str, int]]:
        """The histogram's buckets as Prometheus exposes them: (`le`, count at or below)."""
        out, total = [], 0
        for bound, count in zip((*map(str, BUCKETS), "+Inf"), self.buckets):
            total += count
            out.append((bound, total))
        return out


@dataclass
class Edge:
    """Calls from one service to another and how many of them failed, as a tracing
    backend counts them (these survive the restarts of either side)."""

    calls: int = 0
    failed: int = 0


class Shop:
    """The shop's services, their processes and what they have served."""

    def __init__(self, now: float, *, seed: int = 0, specs: Sequence[ServiceSpec] = SHOP,
                 entry_rps: float = ENTRY_RPS, noise: float = 0.25, wave: tuple[float, float] = WAVE) -> None:
        self.specs = {spec.name: spec for spec in specs}
        self.rng = random.Random(seed)
        self.noise = noise
        self.entry_rps = entry_rps
        self.wave = wave
        self.processes = {spec.name: Process(spec.version, now) for spec in specs}
        self.telemetry = {spec.name: Telemetry() for spec in specs}
        self.edges = {pair: Edge() for pair in edges(specs)}
        self.clock = now
        self.next_arrival = now + self.rng.expovariate(self._rate(now))

    # -- time -----------------------------------------------------------------------

    def advance(self, now: float) -> int:
        """Serve every request that arrived after the last call and by `now`; return how many."""
        if now <= self.clock:
            return 0
        if now - self.clock > MAX_CATCH_UP_S:
            self._run_processes(now - MAX_CATCH_UP_S)
            self.next_arrival = max(self.next_arrival, self.clock)
        served = 0
        while self.next_arrival <= now:
            moment = self.next_arrival
            self._run_processes(moment)
            self._serve(ENTRY, moment)
            served += 1
            self.next_arrival = moment + self.rng.expovariate(self._rate(moment))
        self._run_processes(now)
        return served

    def _rate(self, t: float) -> float:
        depth, period = self.wave
        return self.entry_rps * (1 + depth * math.sin(2 * math.pi * t / period))

    def _run_processes(self, until: float) -> None:
        # Restarts of crash-looping processes, and the CPU every running process burns.
        for name, process in self.processes.items():
            if process.crash_loop is not None:
                for moment in process.crash_loop.restarts(self.clock, until):
                    self._restart(name, moment)
            if not process.down(until):
                burn = SATURATED_CPU if process.saturated else IDLE_CPU
                self.telemetry[name].cpu_s += burn * (until - max(self.clock, process.started_at))
        self.clock = max(self.clock, until)

    # -- requests -------------------------------------------------------------------

    def _serve(self, name: str, t: float) -> tuple[float, int] | None:
        """One request to `name` at `t`: (latency, status), or None when it is down."""
        spec, process = self.specs[name], self.processes[name]
        if process.down(t):
            return None  # connection refused: the process is not there to count it
        latency = (spec.work_s + process.extra_latency_s) * math.exp(self.noise * self.rng.gauss(0.0, 1.0))
        status = 200
        for call in spec.calls:
            if self.rng.random() >= call.share:
                continue
            answer = self._serve(call.callee, t)
            passes_on = self.rng.random() < call.fail_share
            edge = self.edges[(name, call.callee)]
            edge.calls += 1
            if answer is not None:
                latency += answer[0]
            failed_with = 503 if answer is None else 502 if answer[1] >= 500 else None
            if failed_with is not None:
                edge.failed += 1
                if passes_on and status == 200:
                    status = failed_with
        if self.rng.random() < spec.base_error + process.error_rate:
            status = 500
        self.telemetry[name].observe(status, latency, spec.cpu_per_request_s)
        return latency, status

    # -- what faults do -------------------------------------------------------------

    def _restart(self, name: str, at: float) -> None:
        self.processes[name].started_at = at
        self.telemetry[name] = Telemetry()

    def deploy(self, name: str, version: str, now: float) -> None:
        """Roll `version` out: the process restarts, its counters begin again."""
        self.advance(now)
        self.processes[name].version = version
        self._restart(name, now)

    def impair(self, name: str, fault: str | None, *, error_rate: float = 0.0, extra_latency_s: float = 0.0,
               saturated: bool = False, crash_loop: CrashLoop | None = None) -> None:
        """Set what goes wrong with `name` from now on (everything else back to normal)."""
        process = self.processes[name]
        process.fault, process.error_rate, process.extra_latency_s = fault, error_rate, extra_latency_s
        process.saturated, process.crash_loop = saturated, crash_loop

    def up(self, name: str, now: float) -> bool:
        return not self.processes[name].down(now)
