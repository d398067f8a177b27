"""Per-call timeout, retries with exponential backoff and full jitter, and a circuit
breaker per source (SPEC §4).

Time and randomness are injected (`Clock`, `Backoff.random`) so the breaker and the
backoff are tested without waiting. The per-call timeout itself runs on the event loop.
"""

from __future__ import annotations

import asyncio
import random as _random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal, Protocol, TypeVar

from foundation.settings import CorrelationSettings

T = TypeVar("T")


class Clock(Protocol):
    def now(self) -> datetime:
        """Wall-clock time (UTC) for timestamps and query times."""

    def monotonic(self) -> float:
        """Seconds on a clock that never goes back, for durations and the breaker."""

    async def sleep(self, seconds: float) -> None:
        """Wait `seconds` (backoff between attempts)."""


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)

    def monotonic(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


SYSTEM_CLOCK = SystemClock()


class SourceError(Exception):
    """A call to a source did not give an answer; the message is shown to users as is."""


class QueryRejected(SourceError):
    """The source answered but refused the query (bad PromQL, unknown label...).

    Retrying cannot help, and the source is healthy, so the breaker counts a success."""


class SourceUnreachable(SourceError):
    """No usable answer: connection refused, timeout, 5xx. Retried; counts for the breaker."""


class CircuitOpen(SourceUnreachable):
    """The breaker refused the call without making it."""


@dataclass(frozen=True)
class Backoff:
    """Exponential backoff with full jitter: wait uniform(0, min(max, base·2^(n-1)))
    after the n-th failed attempt."""

    base_s: float
    max_s: float
    random: Callable[[], float] = _random.random

    def delay(self, attempt: int) -> float:
        return self.random() * min(self.max_s, self.base_s * 2 ** (attempt - 1))


BreakerState = Literal["closed", "open", "half_open"]


@dataclass
class CircuitBreaker:
    """Opens after `failures` consecutive failed attempts; after `reset_s` it lets one
    trial call through (half-open): a success closes it, a failure opens it again."""

    source: str
    failures: int
    reset_s: float
    clock: Clock = field(default=SYSTEM_CLOCK, repr=False)
    consecutive: int = 0
    opened_at: float | None = None
    last_error: str | None = None
    _trial: bool = field(default=False, repr=False)

    @property
    def state(self) -> BreakerState:
        if self.opened_at is None:
            return "closed"
        if self.clock.monotonic() - self.opened_at >= self.reset_s:
            return "half_open"
        return "open"

    def before_call(self) -> None:
        """Raise `CircuitOpen` unless a call may go out now."""
        state = self.state
        if state == "closed":
            return
        if state == "half_open" and not self._trial:
            self._trial = True
            return
        wait = max(self.reset_s - (self.clock.monotonic() - (self.opened_at or 0)), 0)
        detail = f"; next trial in {wait:.0f} s" if state == "open" else "; a trial call is in flight"
        raise CircuitOpen(f"circuit open for {self.source} after {self.consecutive} consecutive "
                          f"failures (last: {self.last_error}){detail}")

    def succeeded(self) -> None:
        self.consecutive, self.opened_at, self.last_error, self._trial = 0, None, None, False

    def failed(self, error: str) -> None:
        self.consecutive += 1
        self.last_error = error
        if self._trial or self.consecutive >= self.failures:
            self.opened_at = self.clock.monotonic()
        self._trial = False

    def abandoned(self) -> None:
        """A call was cancelled (run deadline): it proved nothing either way."""
        self._trial = False


@dataclass(frozen=True)
class Policy:
    timeout_s: float
    attempts: int
    backoff: Backoff

    @classmethod
    def from_settings(cls, settings: CorrelationSettings,
                      random: Callable[[], float] = _random.random) -> Policy:
        return cls(settings.timeout_s, settings.attempts,
                   Backoff(settings.backoff_base_s, settings.backoff_max_s, random))


@dataclass
class Calls:
    """One source's calls within one run: each goes through the breaker, a timeout and
    retries; attempts and queries are counted here so a run can report them even when
    the source is cut off by the run deadline."""

    policy: Policy
    breaker: CircuitBreaker
    clock: Clock = SYSTEM_CLOCK
    attempts: int = 0
    queries: list[str] = field(default_factory=list)

    def note(self, query: str) -> None:
        """Remember a query as run (shown on the source's completion), once."""
        if query not in self.queries:
            self.queries.append(query)

    async def call(self, what: str, attempt: Callable[[], Awaitable[T]]) -> T:
        """Run `attempt()` until it answers, at most `policy.attempts` times.

        Raises `QueryRejected` at once, `CircuitOpen` when the breaker is (or becomes)
        open, `SourceUnreachable` naming the last error after the last attempt.
        """
        error = "no attempt made"
        for number in range(1, self.policy.attempts + 1):
            try:
                self.breaker.before_call()
            except CircuitOpen:
                raise  # its message names the last error that opened it
            self.attempts += 1
            try:
                async with asyncio.timeout(self.policy.timeout_s):
                    result = await attempt()
            except QueryRejected:
                self.breaker.succeeded()
                raise
            except (SourceUnreachable, TimeoutError) as exc:
                error = str(exc) if isinstance(exc, SourceUnreachable) else (
                    f"{what}: no answer within {self.policy.timeout_s:g} s")
                self.breaker.failed(error)
            except asyncio.CancelledError:
                self.breaker.abandoned()
                raise
            else:
                self.breaker.succeeded()
                return result
            if number < self.policy.attempts and self.breaker.state != "open":
                await self.clock.sleep(self.policy.backoff.delay(number))
        raise SourceUnreachable(f"{error} (after {self.policy.attempts} attempts)")
