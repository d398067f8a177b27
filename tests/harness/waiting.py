"""Poll for an outcome with a deadline: tests never sleep a guessed time."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

T = TypeVar("T")


class WaitTimeout(AssertionError):
    """The condition did not hold before the deadline."""


def _timeout_error(message: str, timeout: float, last: Any, error: BaseException | None) -> WaitTimeout:
    detail = f"last error: {error!r}" if error is not None else f"last value: {last!r}"
    return WaitTimeout(f"{message}: not true within {timeout:g}s ({detail})")


def wait_for(
    predicate: Callable[[], T],
    timeout: float,
    interval: float = 0.05,
    message: str = "condition",
) -> T:
    """Call ``predicate`` every ``interval`` seconds until it returns a truthy
    value, and return that value.

    An exception from ``predicate`` (a failed assert, a refused connection)
    counts as "not yet". At the deadline raise ``WaitTimeout`` naming
    ``message`` and the last value or error.
    """
    deadline = time.monotonic() + timeout
    last: Any = None
    error: BaseException | None = None
    while True:
        try:
            last, error = predicate(), None
            if last:
                return last
        except Exception as exc:
            error = exc
        if time.monotonic() >= deadline:
            raise _timeout_error(message, timeout, last, error) from error
        time.sleep(interval)


async def wait_for_async(
    predicate: Callable[[], T | Awaitable[T]],
    timeout: float,
    interval: float = 0.05,
    message: str = "condition",
) -> T:
    """``wait_for`` for the event loop: ``predicate`` may be a plain or an
    async callable; each call is bounded by the remaining time."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    last: Any = None
    error: BaseException | None = None
    while True:
        try:
            result = predicate()
            if inspect.isawaitable(result):
                result = await asyncio.wait_for(result, max(deadline - loop.time(), 0.001))
            last, error = result, None
            if last:
                return last
        except Exception as exc:  # includes asyncio.TimeoutError from the bound above
            error = exc
        if loop.time() >= deadline:
            raise _timeout_error(message, timeout, last, error) from error
        await asyncio.sleep(interval)
