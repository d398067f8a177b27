"""A small Server-Sent Events client for tests: read messages with a deadline."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx


@dataclass(frozen=True)
class Message:
    id: str | None
    event: str
    data: str

    @property
    def json(self) -> Any:
        return json.loads(self.data)

    @property
    def change_id(self) -> int:
        assert self.id is not None, f"message without id: {self}"
        return int(self.id)


class EventStream:
    """Messages of one open stream, queued as they arrive; comments are counted."""

    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        self.messages: asyncio.Queue[Message | None] = asyncio.Queue()
        self.comments = 0
        self.closed_by_server = False
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        fields: dict[str, list[str]] = {}
        try:
            async for line in self.response.aiter_lines():
                if line == "":
                    if "data" in fields or "event" in fields:
                        await self.messages.put(Message(
                            id=fields.get("id", [None])[-1], event=fields.get("event", ["message"])[-1],
                            data="\n".join(fields.get("data", []))))
                    fields = {}
                elif line.startswith(":"):
                    self.comments += 1
                else:
                    name, _, value = line.partition(":")
                    fields.setdefault(name, []).append(value[1:] if value.startswith(" ") else value)
            self.closed_by_server = True
        except (httpx.HTTPError, asyncio.CancelledError):
            pass
        finally:
            await self.messages.put(None)

    async def next(self, timeout: float = 15) -> Message:
        """The next message; fails if none arrives within `timeout` or the stream ends."""
        message = await asyncio.wait_for(self.messages.get(), timeout)
        if message is None:
            raise AssertionError("the stream ended")
        return message

    async def take(self, count: int, timeout: float = 30) -> list[Message]:
        """The next `count` messages, all within `timeout`."""
        async with asyncio.timeout(timeout):
            return [await self.next(timeout) for _ in range(count)]

    async def until(self, predicate, timeout: float = 30) -> list[Message]:
        """Messages up to and including the first one for which `predicate` holds."""
        seen: list[Message] = []
        async with asyncio.timeout(timeout):
            while True:
                seen.append(await self.next(timeout))
                if predicate(seen[-1]):
                    return seen

    async def close(self) -> None:
        self._reader.cancel()
        await asyncio.gather(self._reader, return_exceptions=True)
        await self.response.aclose()


@asynccontextmanager
async def open_stream(client: httpx.AsyncClient, *, resume_after: int | None = None,
                      **params: Any) -> AsyncIterator[EventStream]:
    """GET /v1/stream with query `params`, resuming after the change id `resume_after`
    (Last-Event-ID header); yields once the response headers are in (subscribed)."""
    headers = {"Accept": "text/event-stream"}
    if resume_after is not None:
        headers["Last-Event-ID"] = str(resume_after)
    request = client.build_request("GET", "/v1/stream", params={k: v for k, v in params.items() if v is not None},
                                   headers=headers, timeout=httpx.Timeout(30, read=None))
    response = await client.send(request, stream=True)
    if response.status_code != 200:
        await response.aread()
        raise AssertionError(f"stream refused: {response.status_code} {response.text}")
    stream = EventStream(response)
    try:
        yield stream
    finally:
        await stream.close()
