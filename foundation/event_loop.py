"""The event loop the long-running processes run on (uvloop), and how they collect garbage.

The worker and the projector spend much of each record in the loop itself (task
creation, callbacks, socket readiness); uvloop does that work in C. The gateway gets
the same loop from uvicorn.
"""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Coroutine
from typing import Any, TypeVar

import uvloop

T = TypeVar("T")

GC_THRESHOLDS = (50_000, 20, 100)


def new_event_loop() -> asyncio.AbstractEventLoop:
    """A fresh uvloop loop, set as the current thread's loop (as Faust's worker expects)."""
    loop = uvloop.new_event_loop()
    asyncio.set_event_loop(loop)
    return loop


def run(main: Coroutine[Any, Any, T]) -> T:
    """`asyncio.run` on uvloop."""
    return uvloop.run(main)


def tune_gc() -> None:
    """Collect cycles rarely: a batch of the projector or of a replay allocates hundreds
    of thousands of short-lived, acyclic objects (freed by reference counting), and with
    CPython's default thresholds the cyclic collector ran so often it cost more than decoding.
    Objects alive at startup are frozen out of every collection."""
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)
