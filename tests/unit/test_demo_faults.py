"""The fault schedule, and the shop server carrying it out on a clock the test moves."""

from __future__ import annotations

import pytest

from warroom.demo.faults import SCHEDULE_KINDS, Action, Schedule, UnknownFault, inject, round_robin
from warroom.demo.shop import SERVICES, Shop
from warroom.demo.shop_server import LiveShop

T0 = 1_800_000_000.0


def test_the_first_fault_comes_within_a_minute_and_every_one_is_cleared_after_its_duration() -> None:
    schedule = Schedule(T0, first_after_s=20, duration_s=180, gap_s=150)
    assert schedule.due(T0 + 19) == []
    assert schedule.due(T0 + 20) == [Action(T0 + 20, "payments", "bad-deploy")]
    assert schedule.due(T0 + 199) == []
    assert schedule.due(T0 + 200) == [Action(T0 + 200, "payments", "clear")]
    # A long pause catches up every action in order, each at its own moment.
    assert schedule.due(T0 + 900) == [Action(T0 + 350, "inventory", "latency"), Action(T0 + 530, "inventory", "clear"),
                                      Action(T0 + 680, "search", "crash-loop"), Action(T0 + 860, "search", "clear")]


def test_the_default_schedule_begins_within_a_minute_on_a_leaf() -> None:
    first = Schedule(T0).next
    assert first.at - T0 <= 60 and first.kind != "clear"
    assert first.service in {"payments", "inventory"}  # called by others, calling nobody


def test_round_robin_takes_every_service_and_kind_once() -> None:
    plan = round_robin()
    assert len(plan) == len(set(plan)) == len(SERVICES) * len(SCHEDULE_KINDS)
    assert [service for service, _ in plan[:5]] == ["payments", "inventory", "search", "checkout", "frontend"]
    assert [kind for _, kind in plan[:3]] == ["bad-deploy", "latency", "crash-loop"]
    assert len(set(round_robin(("a", "b"), ("x", "y")))) == 4  # even when the counts share a factor


def test_clearing_the_scheduled_fault_by_hand_ends_it_and_the_calm_counts_from_then() -> None:
    schedule = Schedule(T0, first_after_s=20, duration_s=180, gap_s=150)
    schedule.due(T0 + 20)
    schedule.noticed("payments", "clear", T0 + 60)
    assert schedule.next == Action(T0 + 210, "inventory", "latency")


def test_a_fault_by_hand_postpones_the_next_scheduled_one_but_not_the_scheduled_clear() -> None:
    schedule = Schedule(T0, first_after_s=20, duration_s=180, gap_s=150)
    schedule.noticed("search", "latency", T0 + 10)
    assert schedule.next == Action(T0 + 160, "payments", "bad-deploy")
    schedule.due(T0 + 160)
    schedule.noticed("checkout", "crash-loop", T0 + 170)  # another service: the scheduled clear stays on time
    assert schedule.next == Action(T0 + 340, "payments", "clear")


def test_an_unknown_service_or_kind_names_the_choices() -> None:
    shop = Shop(T0)
    with pytest.raises(UnknownFault, match="frontend, checkout, search, payments, inventory") as err:
        inject(shop, "cart", "latency", T0)
    assert err.value.field == "service"
    with pytest.raises(UnknownFault, match="bad-deploy, latency, crash-loop, clear") as err:
        inject(shop, "payments", "meteor", T0)
    assert err.value.field == "kind"


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_the_live_shop_carries_out_its_schedule_at_the_scheduled_moments() -> None:
    clock = Clock(T0)
    live = LiveShop(clock=clock, seed=1, schedule=Schedule(T0, first_after_s=20, duration_s=60, gap_s=60))
    clock.now = T0 + 19
    live.tick()
    assert live.state()["services"]["payments"]["fault"] is None
    clock.now = T0 + 25  # a scrape or a look at the state comes first: the fault is still on time
    payments = live.state()["services"]["payments"]
    assert (payments["fault"], payments["started_at"]) == ("bad-deploy", T0 + 20)  # at its moment, not the tick's
    clock.now = T0 + 81
    live.tick()
    assert live.state()["services"]["payments"] == {"version": "3.8.0", "started_at": T0 + 80,
                                                    "fault": None, "up": True}
    assert live.state()["next_scheduled"] == {"service": "inventory", "kind": "latency", "in_s": 59.0}


def test_with_faults_off_nothing_happens_by_itself_and_faults_by_hand_still_work() -> None:
    clock = Clock(T0)
    live = LiveShop(clock=clock, seed=1, scheduled=False)
    for minute in range(1, 31):
        clock.now = T0 + 60 * minute
        live.tick()
    state = live.state()
    assert state["next_scheduled"] is None
    assert all(s["fault"] is None and s["started_at"] == T0 for s in state["services"].values())
    assert live.fault("search", "latency")["services"]["search"]["fault"] == "latency"
