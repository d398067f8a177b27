"""Sending pages to a real HTTP server: a slow receiver times out on its own deadline and
holds up nobody else; a 5xx is a failure carrying the status."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from uuid import UUID

import httpx
import pytest

from harness.receiver import Receiver
from streams.delivery import deliver
from streams.page_formats import PageText
from foundation.settings import Receiver as ReceiverSettings

TEXT = PageText(notification_id=UUID(int=7), incident_id=UUID(int=1), title="Checkout down", service="checkout",
                severity="high", status="open", version=1, link="http://w.example/#/incidents/1", trigger="opened",
                level=0, receiver="hook")


@pytest.fixture
def server() -> Iterator[Receiver]:
    receiver = Receiver(answers={"/down": 502}, delays={"/slow": 10})
    yield receiver
    receiver.close()


async def test_a_slow_receiver_times_out_alone_and_a_5xx_is_a_failure(server: Receiver) -> None:
    slow = ReceiverSettings(kind="webhook", url=f"{server.url}/slow", timeout_s=0.5)
    fast = ReceiverSettings(kind="slack", url=f"{server.url}/fast", timeout_s=0.5)
    down = ReceiverSettings(kind="teams", url=f"{server.url}/down", timeout_s=0.5)
    async with httpx.AsyncClient() as client:
        started = time.monotonic()

        async def timed(receiver: ReceiverSettings):
            result = await deliver(client, receiver, TEXT)
            return result, time.monotonic() - started

        (slow_result, _), (fast_result, fast_took), (down_result, _) = await asyncio.gather(
            timed(slow), timed(fast), timed(down))
        elapsed = time.monotonic() - started
    assert fast_result.ok and fast_result.status == 200
    assert fast_took < 0.5  # not held up by the slow one
    assert not slow_result.ok and "timed out" in (slow_result.error or "")
    assert elapsed < 3  # the slow one gave up on its own deadline, not the server's 10 s
    assert not down_result.ok and down_result.status == 502 and "502" in (down_result.error or "")
    assert {d.path for d in server.received()} == {"/slow", "/fast", "/down"}
    assert all(d.headers["Idempotency-Key"] == str(TEXT.notification_id) for d in server.received())


async def test_an_unreachable_smtp_server_is_a_failure_not_an_exception() -> None:
    from warroom.servers import free_port

    mail = ReceiverSettings(kind="email", smtp_host="127.0.0.1", smtp_port=free_port(), sender="w@example.com",
                            to=["a@example.com"], timeout_s=1)
    async with httpx.AsyncClient() as client:
        result = await deliver(client, mail, TEXT)
    assert not result.ok and result.error
