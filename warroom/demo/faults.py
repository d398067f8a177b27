"""Faults of the demo shop: what each kind does to a service, and the schedule (pure).

- `bad-deploy`: a new version rolls out (the process restarts, `build_info` changes) and
  fails `BAD_DEPLOY_ERROR_RATE` of its requests.
- `latency`: the service's own work takes `ADDED_LATENCY_S` longer and its CPU saturates.
- `crash-loop`: the process dies and comes back again and again (`process_start_time_seconds`
  moves at each start); while it is down its callers' calls to it fail.
- `clear`: back to normal: a bad version is rolled back, a crashed process starts.

A service carries one fault at a time: a new one replaces the one before.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from warroom.demo.shop import CrashLoop, Shop

KINDS = ("bad-deploy", "latency", "crash-loop", "clear")
BAD_DEPLOY_ERROR_RATE = 0.35
ADDED_LATENCY_S = 1.2
CRASH_DOWN_S = 12.0
CRASH_UP_S = 8.0


class UnknownFault(ValueError):
    """A fault the shop cannot inject; `field` names the argument at fault."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def check(shop: Shop, service: str, kind: str) -> None:
    """Raise UnknownFault naming the choices when `service` or `kind` is not one of the shop's."""
    if service not in shop.specs:
        raise UnknownFault("service", f"unknown service {service!r}; the shop's services are: "
                                      f"{', '.join(shop.specs)}")
    if kind not in KINDS:
        raise UnknownFault("kind", f"unknown fault kind {kind!r}; the kinds are: {', '.join(KINDS)}")


def bad_version(stable: str, deploys: int) -> str:
    """The version of the `deploys`-th bad rollout of a service whose good one is `stable`."""
    major, minor, *_ = (stable.split(".") + ["0", "0"])[:3]
    return f"{major}.{int(minor) + deploys}.0" if minor.isdigit() else f"{stable}-{deploys}"


def inject(shop: Shop, service: str, kind: str, now: float) -> None:
    """Apply fault `kind` to `service` at `now` (UnknownFault for anything else)."""
    check(shop, service, kind)
    shop.advance(now)
    heal(shop, service, now)
    if kind == "bad-deploy":
        process = shop.processes[service]
        process.deploys += 1
        shop.deploy(service, bad_version(shop.specs[service].version, process.deploys), now)
        shop.impair(service, kind, error_rate=BAD_DEPLOY_ERROR_RATE)
    elif kind == "latency":
        shop.impair(service, kind, extra_latency_s=ADDED_LATENCY_S, saturated=True)
    elif kind == "crash-loop":
        shop.impair(service, kind, crash_loop=CrashLoop(now, CRASH_DOWN_S, CRASH_UP_S))


def heal(shop: Shop, service: str, now: float) -> None:
    """`service` back to normal at `now`: the good version rolled back out if another runs,
    a process that is down started."""
    shop.advance(now)
    process, spec = shop.processes[service], shop.specs[service]
    was_down = process.down(now)
    shop.impair(service, None)
    if process.version != spec.version or was_down:
        shop.deploy(service, spec.version, now)


# -- the schedule ---------------------------------------------------------------------

SCHEDULE_ORDER = ("payments", "inventory", "search", "checkout", "frontend")
"""Leaves first: the first fault is one that correlation must trace through the graph."""

SCHEDULE_KINDS = ("bad-deploy", "latency", "crash-loop")


def round_robin(services: Sequence[str] = SCHEDULE_ORDER,
                kinds: Sequence[str] = SCHEDULE_KINDS) -> list[tuple[str, str]]:
    """Every (service, kind) once, services and kinds each taken in turn."""
    count = len(services) * len(kinds)
    plan = [(services[i % len(services)], kinds[i % len(kinds)]) for i in range(count)]
    if len(set(plan)) < count:  # counts with a common factor would repeat pairs: walk rows instead
        plan = [(service, kind) for kind in kinds for service in services]
    return plan


@dataclass(frozen=True)
class Action:
    at: float
    service: str
    kind: str


class Schedule:
    """Faults on a timetable: the first `first_after_s` after `start`, each lasting
    `duration_s`, then `gap_s` of calm before the next, taking `plan` in turn.

    A fault injected by hand is noticed: the next scheduled injection waits at least a
    gap after it, and clearing by hand the service the schedule broke ends that fault
    early (the calm counts from then). The schedule's own clears stay on time."""

    def __init__(self, start: float, *, first_after_s: float = 20.0, duration_s: float = 180.0,
                 gap_s: float = 150.0, plan: Sequence[tuple[str, str]] | None = None) -> None:
        self.plan = list(plan or round_robin())
        self.duration_s, self.gap_s = duration_s, gap_s
        self.index = 0
        service, kind = self.plan[0]
        self.next = Action(start + first_after_s, service, kind)

    def due(self, now: float) -> list[Action]:
        """The actions whose time has come by `now`, in order; the schedule moves past them."""
        actions = []
        while self.next.at <= now:
            action = self.next
            actions.append(action)
            if action.kind == "clear":
                self._calm_from(action.at)
            else:
                self.next = Action(action.at + self.duration_s, action.service, "clear")
        return actions

    def noticed(self, service: str, kind: str, now: float) -> None:
        """A fault injected by hand at `now`."""
        if self.next.kind == "clear":
            if kind == "clear" and service == self.next.service:
                self._calm_from(now)
        else:
            self.next = replace(self.next, at=max(self.next.at, now + self.gap_s))

    def _calm_from(self, moment: float) -> None:
        self.index += 1
        service, kind = self.plan[self.index % len(self.plan)]
        self.next = Action(moment + self.gap_s, service, kind)
