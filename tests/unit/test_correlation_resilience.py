"""Backoff, circuit breaker and retried calls, on a clock the test moves."""

from __future__ import annotations

import asyncio

import pytest

from harness.clocks import FakeClock
from streams.correlation.resilience import (
    Backoff,
    Calls,
    CircuitBreaker,
    CircuitOpen,
    Policy,
    QueryRejected,
    SourceUnreachable,
)


@pytest.mark.parametrize(("attempt", "draw", "expected"), [
    (1, 1.0, 0.2), (2, 1.0, 0.4), (3, 1.0, 0.8), (5, 1.0, 2.0), (9, 1.0, 2.0),  # capped at max
    (3, 0.5, 0.4), (3, 0.0, 0.0),                                               # full jitter
])
def test_backoff_is_exponential_with_full_jitter(attempt: int, draw: float, expected: float) -> None:
    assert Backoff(0.2, 2.0, random=lambda: draw).delay(attempt) == pytest.approx(expected)


def _breaker(clock: FakeClock, failures: int = 5, reset_s: float = 30) -> CircuitBreaker:
    return CircuitBreaker("prometheus", failures, reset_s, clock)


def test_breaker_opens_after_consecutive_failures_only() -> None:
    clock = FakeClock()
    breaker = _breaker(clock)
    for _ in range(4):
        breaker.failed("connection refused")
    breaker.succeeded()  # a success in between resets the count
    for _ in range(4):
        breaker.failed("connection refused")
    assert breaker.state == "closed"
    breaker.failed("connection refused")
    assert breaker.state == "open"
    with pytest.raises(CircuitOpen, match=r"^circuit open for prometheus after 5 consecutive failures "
                                          r"\(last: connection refused\); next trial in 30 s"):
        breaker.before_call()


def test_breaker_half_opens_for_one_trial_after_reset() -> None:
    clock = FakeClock()
    breaker = _breaker(clock)
    for _ in range(5):
        breaker.failed("boom")
    clock.advance(29.9)
    assert breaker.state == "open"
    clock.advance(0.1)
    assert breaker.state == "half_open"
    breaker.before_call()  # the trial
    with pytest.raises(CircuitOpen, match="trial call is in flight"):
        breaker.before_call()
    breaker.failed("boom again")  # a failed trial opens it for another reset period
    assert breaker.state == "open"
    clock.advance(30)
    breaker.before_call()
    breaker.succeeded()
    assert breaker.state == "closed" and breaker.consecutive == 0
    breaker.before_call()
    breaker.before_call()  # closed: no limit


def test_abandoned_trial_lets_the_next_call_try() -> None:
    clock = FakeClock()
    breaker = _breaker(clock, failures=1)
    breaker.failed("boom")
    clock.advance(30)
    breaker.before_call()
    breaker.abandoned()
    breaker.before_call()


class Flaky:
    """Fails with the given errors in turn, then answers."""

    def __init__(self, *errors: Exception) -> None:
        self.errors = list(errors)
        self.calls = 0

    async def __call__(self) -> str:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return "answer"


def _calls(clock: FakeClock, breaker: CircuitBreaker | None = None, attempts: int = 3,
           timeout_s: float = 10) -> Calls:
    return Calls(Policy(timeout_s, attempts, Backoff(0.2, 2.0, random=lambda: 1.0)),
                 breaker or _breaker(clock), clock)


async def test_retries_with_backoff_until_an_answer() -> None:
    clock = FakeClock()
    calls = _calls(clock)
    attempt = Flaky(SourceUnreachable("refused"), SourceUnreachable("refused"))
    assert await calls.call("q", attempt) == "answer"
    assert (attempt.calls, calls.attempts, clock.sleeps) == (3, 3, [0.2, 0.4])
    assert calls.breaker.consecutive == 0


async def test_gives_up_after_the_last_attempt_naming_the_error() -> None:
    clock = FakeClock()
    calls = _calls(clock)
    attempt = Flaky(*(SourceUnreachable("Prometheus unreachable: ConnectError") for _ in range(3)))
    with pytest.raises(SourceUnreachable, match=r"ConnectError \(after 3 attempts\)"):
        await calls.call("q", attempt)
    assert calls.attempts == 3 and clock.sleeps == [0.2, 0.4]  # no sleep after the last
    assert calls.breaker.consecutive == 3


async def test_a_refused_query_is_not_retried_and_does_not_count_against_the_source() -> None:
    clock = FakeClock()
    calls = _calls(clock)
    calls.breaker.failed("earlier")
    with pytest.raises(QueryRejected):
        await calls.call("q", Flaky(QueryRejected("bad_data: parse error")))
    assert calls.attempts == 1 and clock.sleeps == [] and calls.breaker.consecutive == 0


async def test_breaker_opening_mid_retries_stops_them() -> None:
    clock = FakeClock()
    calls = _calls(clock, _breaker(clock, failures=2), attempts=5)
    attempt = Flaky(*(SourceUnreachable("refused") for _ in range(5)))
    with pytest.raises(CircuitOpen, match="^circuit open"):
        await calls.call("q", attempt)
    assert attempt.calls == 2 and calls.attempts == 2 and clock.sleeps == [0.2]


async def test_open_breaker_refuses_without_calling() -> None:
    clock = FakeClock()
    breaker = _breaker(clock, failures=1)
    breaker.failed("refused")
    calls = _calls(clock, breaker)
    attempt = Flaky()
    with pytest.raises(CircuitOpen, match="^circuit open"):
        await calls.call("q", attempt)
    assert attempt.calls == 0 and calls.attempts == 0


async def test_each_attempt_has_a_timeout() -> None:
    clock = FakeClock()
    calls = _calls(clock, timeout_s=0.01, attempts=2)
    never = asyncio.Event()

    async def hangs() -> None:
        await never.wait()

    with pytest.raises(SourceUnreachable, match=r"prometheus q: no answer within 0.01 s \(after 2 attempts\)"):
        await calls.call("prometheus q", hangs)
    assert calls.attempts == 2 and calls.breaker.consecutive == 2


def test_queries_are_remembered_once_in_order() -> None:
    calls = _calls(FakeClock())
    for query in ("a", "b", "a"):
        calls.note(query)
    assert calls.queries == ["a", "b"]
