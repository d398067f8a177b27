"""A lean SSE load client: many connections from one process on raw asyncio sockets,
each noting when every message id arrives. A benchmark drives it over stdin/stdout:

    python -m bench.harness.sse_clients HOST PORT PATH TOKEN CONNECTIONS

It prints one JSON line per event: `{"connected": n, "failed": f}` once every connection
has its response headers (the server has subscribed it); `{"complete": id}` when every
open connection has message `id`; and after the line `end` on stdin,
`{"received": {id: [count, last]}, "closed": k, "cpu_s": s}`, then exits. Times are
`time.monotonic()`, the machine-wide CLOCK_MONOTONIC, so they compare across processes.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time

CONNECTING = 100  # connections being opened at once: under the server's accept backlog
HEADERS_TIMEOUT_S = 60
MARK, FRAME_END, LINE_END = b"id: ", b"\r\n\r\n", b"\r\n"


def say(**fields: object) -> None:
    sys.stdout.write(json.dumps(fields) + "\n")
    sys.stdout.flush()


class Crowd:
    """Every connection's messages, counted per id."""

    def __init__(self) -> None:
        self.open = 0
        self.closed = 0
        self.counts: dict[int, int] = {}
        self.last: dict[int, float] = {}

    def received(self, message_id: int, at: float) -> None:
        count = self.counts[message_id] = self.counts.get(message_id, 0) + 1
        self.last[message_id] = at
        if count == self.open:
            say(complete=message_id)


class Client(asyncio.Protocol):
    """One SSE connection: a GET, the response headers, then frames `id: N ... \\r\\n\\r\\n`."""

    def __init__(self, crowd: Crowd, request: bytes) -> None:
        self.crowd, self.request = crowd, request
        self.ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.buffer = b""
        self.streaming = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport.write(self.request)  # type: ignore[attr-defined]
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        at = time.monotonic()
        buffer = self.buffer + data if self.buffer else data
        if not self.streaming:
            head = buffer.find(FRAME_END)
            if head < 0:
                self.buffer = buffer
                return
            status = buffer[:buffer.find(LINE_END)]
            if b" 200 " not in status:
                self.ready.set_exception(RuntimeError(status.decode(errors="replace")))
                self.transport.close()
                return
            self.streaming = True
            self.crowd.open += 1
            self.ready.set_result(None)
            buffer = buffer[head + len(FRAME_END):]
        position = 0
        while (mark := buffer.find(MARK, position)) >= 0 and (end := buffer.find(FRAME_END, mark)) >= 0:
            self.crowd.received(int(buffer[mark + len(MARK):buffer.find(LINE_END, mark)]), at)
            position = end + len(FRAME_END)
        rest = buffer[position:]
        mark = rest.find(MARK)
        # Keep a frame that has not ended yet, or what could be the start of a split mark.
        self.buffer = rest[mark:] if mark >= 0 else rest[-(len(MARK) - 1):]

    def connection_lost(self, exc: Exception | None) -> None:
        if self.streaming:
            self.crowd.open -= 1
            self.crowd.closed += 1
        elif not self.ready.done():
            self.ready.set_exception(exc or ConnectionError("closed before the response headers"))


async def main(host: str, port: int, path: str, token: str, connections: int) -> None:
    loop = asyncio.get_running_loop()
    crowd = Crowd()
    request = (f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nAccept: text/event-stream\r\n"
               f"Authorization: Bearer {token}\r\n\r\n").encode()
    gate = asyncio.Semaphore(CONNECTING)
    clients: list[Client] = []

    async def connect() -> bool:
        async with gate:
            try:
                _, client = await loop.create_connection(lambda: Client(crowd, request), host, port)
                clients.append(client)
                await asyncio.wait_for(client.ready, HEADERS_TIMEOUT_S)
                return True
            except (OSError, RuntimeError, TimeoutError) as err:
                print(f"connection failed: {err!r}", file=sys.stderr)
                return False

    opened = await asyncio.gather(*(connect() for _ in range(connections)))
    say(connected=sum(opened), failed=len(opened) - sum(opened))
    stdin = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(stdin), sys.stdin)
    while (await stdin.readline()).strip() not in (b"end", b""):
        pass
    say(received={str(k): [crowd.counts[k], crowd.last[k]] for k in crowd.counts}, closed=crowd.closed,
        cpu_s=round(time.process_time(), 3))
    for client in clients:
        client.transport.close()


if __name__ == "__main__":
    try:
        import uvloop
    except ImportError:  # plain asyncio works too, only slower
        uvloop = None
    host, port, path, token, count = sys.argv[1:6]
    runner = uvloop.run if uvloop else asyncio.run
    runner(main(host, int(port), path, token, int(count)))
