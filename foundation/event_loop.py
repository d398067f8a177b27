"""The event loop the long-running processes run on: uvloop.

The worker and the projector spend much of each record in the loop itself (task
creation, callbacks, socket readiness); uvloop does that work in C. The gateway gets
the same loop from uvicorn.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

import uvloop

T = TypeVar("T")


def new_event_loop() -> asyncio.AbstractEventLoop:
    """A fresh uvloop loop, set as the current thread's loop (as Faust's worker expects)."""
    loop = uvloop.new_event_loop()
    asyncio.set_event_loop(loop)
    return loop


def run(main: Coroutine[Any, Any, T]) -> T:
    """`asyncio.run` on uvloop."""
    return uvloop.run(main)
