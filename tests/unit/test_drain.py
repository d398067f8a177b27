"""The worker consumer's record delivery (`streams.drain`) races a record's callback
against the flow being suspended, the consumer stopping or crashing, as Faust's
`wait_first` does, with one waiter shared by every record."""

from __future__ import annotations

import asyncio

import pytest
from mode import Service

from streams.drain import SharedInterruption


class Consumer(SharedInterruption, Service):
    def __init__(self) -> None:
        super().__init__()
        self.suspend_flow = asyncio.Event()


async def done(log: list, value: object) -> None:
    log.append(value)


async def blocked(log: list, value: object, gate: asyncio.Event) -> None:
    log.append(("started", value))
    try:
        await gate.wait()
        log.append(("finished", value))
    except asyncio.CancelledError:
        log.append(("cancelled", value))
        raise


async def test_records_are_delivered_in_order_with_one_shared_waiter() -> None:
    consumer, log = Consumer(), []
    for n in range(5):
        await consumer._deliver(lambda m: done(log, m), n)
    assert log == [0, 1, 2, 3, 4]
    waiter = consumer._interruption
    await consumer._deliver(lambda m: done(log, m), 5)
    assert consumer._interruption is waiter and not waiter.done()
    consumer.suspend_flow.set()
    await asyncio.wait_for(asyncio.shield(waiter), 1)


async def test_a_callback_waits_as_long_as_it_needs_when_nothing_interrupts() -> None:
    consumer, log, gate = Consumer(), [], asyncio.Event()
    delivery = asyncio.ensure_future(consumer._deliver(lambda m: blocked(log, m, gate), "a"))
    await asyncio.sleep(0.01)
    assert not delivery.done() and log == [("started", "a")]
    gate.set()
    await asyncio.wait_for(delivery, 1)
    assert log == [("started", "a"), ("finished", "a")]


@pytest.mark.parametrize("interrupt", ["suspend_flow", "_stopped", "_crashed"])
async def test_a_blocked_callback_is_cancelled_when_interrupted(interrupt: str) -> None:
    consumer, log, gate = Consumer(), [], asyncio.Event()
    delivery = asyncio.ensure_future(consumer._deliver(lambda m: blocked(log, m, gate), "a"))
    await asyncio.sleep(0.01)
    getattr(consumer, interrupt).set()
    await asyncio.wait_for(delivery, 1)  # returns, as wait_first does
    await asyncio.sleep(0)  # the cancelled callback's turn to see it
    assert log == [("started", "a"), ("cancelled", "a")]


async def test_while_suspended_each_record_goes_through_wait_first() -> None:
    consumer, log, gate = Consumer(), [], asyncio.Event()
    consumer.suspend_flow.set()
    await asyncio.wait_for(consumer._deliver(lambda m: blocked(log, m, gate), "a"), 1)
    await consumer._deliver(lambda m: done(log, m), "b")
    assert log == [("started", "a"), ("cancelled", "a"), "b"]
    assert consumer._interruption is None  # no shared waiter while interrupted
    consumer.suspend_flow.clear()  # flow resumed: a fresh waiter again
    await consumer._deliver(lambda m: done(log, m), "c")
    assert consumer._interruption is not None and not consumer._interruption.done()


async def test_a_callback_error_reaches_the_drain() -> None:
    async def fails(message: object) -> None:
        raise ValueError(f"bad {message}")

    with pytest.raises(ValueError, match="bad x"):
        await Consumer()._deliver(fails, "x")


def test_the_worker_consumer_delivers_this_way(tmp_path) -> None:
    from foundation.settings import Settings
    from streams.app import create_app

    app = create_app(Settings(data_dir=tmp_path)).app
    assert isinstance(app.consumer, SharedInterruption)
