"""One share of a replay: some partitions of the log, read, folded, written and checked.

An incident's events all live in one partition, so the read models of disjoint sets of
partitions are disjoint rows (services aside, which the replay computes from all
incidents at the end). A replay therefore splits the partitions into segments and runs
each in its own process (`SegmentProcess`), using every core; `Segment` is the same
work in the calling process.

Each segment decodes a record once and folds it into rows (`projections.replay.rebuild`)
and into what is checked independently of them (`projections.replay.expected`: the
decider's state, the log's own copies); its report digests both. Digests add up, so
the replay checks the whole schema against the sum of the segments' digests.
"""

from __future__ import annotations

import asyncio
import logging
import os
import pickle
import sys
import time
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime

import asyncpg

from foundation.dead_letters import Poison
from foundation.event_loop import tune_gc
from projections.replay.decoding import Decoder
from projections.replay.expected import Digest, Expected, ServiceTally
from projections.replay.log_reader import events_consumer, read_ranges
from projections.replay.rebuild import Rebuild
from foundation.settings import Settings

log = logging.getLogger("warroom.replay")

# Timeline rows handed to one COPY; the next ones are folded while PostgreSQL stores them.
COPY_ROWS = 20_000
FOLD_SLICE = 250
Progress = Callable[[int], None]


@dataclass
class Report:
    """Where a segment stands after `advance`: what it read, and what its rows must be."""

    positions: dict[int, int] = field(default_factory=dict)
    records: int = 0
    applied: int = 0
    repeated: int = 0
    unreadable: int = 0
    slow_decodes: int = 0
    digests: dict[str, Digest] = field(default_factory=dict)
    tallies: dict[str, ServiceTally] = field(default_factory=dict)
    touched: dict[str, datetime] = field(default_factory=dict)
    seconds: float = 0.0


class Segment:
    """Rebuilds the read models of `partitions` into `schema`, a step at a time."""

    def __init__(self, settings: Settings, schema: str, partitions: list[int]) -> None:
        self.settings = settings
        self.schema = schema
        self.partitions = partitions
        self.topic = settings.topics.name("events")
        self.decoder = Decoder()
        self.rebuild = Rebuild(schema, self.topic)
        self.expected = Expected(self.topic)
        self.records = 0
        self._conn: asyncpg.Connection | None = None
        self._consumer_cm = None
        self._consumer = None

    async def start(self) -> None:
        pg = self.settings.postgres
        self._conn = await asyncpg.connect(pg.dsn, timeout=pg.connect_timeout_s,
                                           server_settings={"application_name": "warroom-replay"})
        # A rebuild that dies is thrown away whole, so its commits need not wait for the disk.
        await self._conn.execute("SET synchronous_commit = off")
        self._consumer_cm = events_consumer(self.settings)
        self._consumer = await self._consumer_cm.__aenter__()

    async def close(self) -> None:
        if self._consumer_cm is not None:
            await self._consumer_cm.__aexit__(None, None, None)
            self._consumer_cm = None
        if self._conn is not None:
            await self._conn.close()
            self._conn = None

    async def advance(self, targets: Mapping[int, int], progress: Progress | None = None) -> Report:
        """Read this segment's partitions up to `targets` (partition → offset), fold and
        write what was read, and report where the segment now stands."""
        assert self._conn is not None and self._consumer is not None, "Segment.start() was not awaited"
        started = time.perf_counter()
        ends = {p: targets[p] for p in self.partitions if p in targets}
        starts = {p: self.expected.offsets.get(p, 0) for p in ends}
        copying: asyncio.Task | None = None
        try:
            async for batch in read_ranges(self._consumer, self.topic, starts, ends):
                for start in range(0, len(batch), FOLD_SLICE):
                    self._fold(batch[start:start + FOLD_SLICE])
                    # The COPY in flight writes its rows between slices, so PostgreSQL
                    # stores one chunk while the next is folded.
                    await asyncio.sleep(0)
                if progress is not None:
                    progress(len(batch))
                if self.rebuild.staged >= COPY_ROWS:
                    if copying is not None:
                        await copying
                    copying = asyncio.create_task(self.rebuild.copy(self._conn, self.rebuild.take()))
            if copying is not None:
                await copying
                copying = None
            await self.rebuild.finish(self._conn)
        finally:
            if copying is not None:
                copying.cancel()
                await asyncio.gather(copying, return_exceptions=True)
        return self.report(time.perf_counter() - started)

    def _fold(self, batch: list) -> None:
        decoder, rebuild, expected = self.decoder, self.rebuild, self.expected
        for record in batch:
            try:
                event = decoder.decode(record.value)
            except Poison:
                rebuild.skip(record)
                expected.skip(record.partition, record.offset)
                continue
            rebuild.add(record, event)
            expected.add(record.partition, record.offset, event)
        self.records += len(batch)

    def report(self, seconds: float = 0.0) -> Report:
        r = self.rebuild
        return Report(
            positions=dict(self.expected.offsets), records=self.records, applied=r.applied,
            repeated=r.repeated, unreadable=r.unreadable, slow_decodes=self.decoder.slow,
            digests=self.expected.digests(self.rebuild), tallies=self.expected.service_tallies(),
            touched=dict(r.touched), seconds=seconds)


# --- in a process of its own ----------------------------------------------------------
# The child is `python -m projections.replay.segment`, spoken to with length-prefixed pickles
# over its stdin and stdout (stdout is the protocol's alone; its other output goes to
# stderr). A fresh interpreter, not multiprocessing's spawn, so nothing depends on how
# the parent's `__main__` was started.


class SegmentProcess:
    """A `Segment` in a child process; same `start`, `advance` and `close` as `Segment`."""

    def __init__(self, settings: Settings, schema: str, partitions: list[int]) -> None:
        self.settings = settings
        self.schema = schema
        self.partitions = partitions
        self._process: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        self._process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "projections.replay.segment", stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE, limit=2**20)
        await self._send(("start", (self.settings, self.schema, self.partitions)))
        await self._answer(None)

    async def advance(self, targets: Mapping[int, int], progress: Progress | None = None) -> Report:
        await self._send(("advance", dict(targets)))
        return await self._answer(progress)

    async def close(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        if process.returncode is None:
            try:
                await self._send(("close", None), process)
                await asyncio.wait_for(process.wait(), 30)
            except (OSError, asyncio.TimeoutError, ConnectionError):
                process.kill()
                await process.wait()

    async def _send(self, message: tuple, process: asyncio.subprocess.Process | None = None) -> None:
        process = process or self._process
        assert process is not None and process.stdin is not None
        data = pickle.dumps(message)
        process.stdin.write(len(data).to_bytes(8, "big") + data)
        await process.stdin.drain()

    async def _answer(self, progress: Progress | None):
        assert self._process is not None and self._process.stdout is not None
        while True:
            try:
                size = int.from_bytes(await self._process.stdout.readexactly(8), "big")
                kind, value = pickle.loads(await self._process.stdout.readexactly(size))
            except asyncio.IncompleteReadError:
                code = await self._process.wait()
                raise RuntimeError(f"replay process for partitions {self.partitions} died (exit code {code})") from None
            if kind == "progress":
                if progress is not None:
                    progress(value)
            elif kind == "error":
                raise RuntimeError(f"replay process for partitions {self.partitions} failed:\n{value}")
            else:
                return value


def _serve() -> None:
    """The child: read requests from stdin, answer on the original stdout."""
    protocol = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # anything printed by accident goes to stderr, not into the protocol
    requests = sys.stdin.buffer
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    tune_gc()

    def send(kind: str, value: object) -> None:
        data = pickle.dumps((kind, value))
        protocol.write(len(data).to_bytes(8, "big") + data)
        protocol.flush()

    def receive() -> tuple:
        header = requests.read(8)
        if len(header) < 8:
            return ("close", None)
        return pickle.loads(requests.read(int.from_bytes(header, "big")))

    kind, (settings, schema, partitions) = receive()
    asyncio.run(_serve_async(Segment(settings, schema, partitions), send, receive))


async def _serve_async(segment: Segment, send: Callable[[str, object], None], receive: Callable[[], tuple]) -> None:
    loop = asyncio.get_running_loop()
    try:
        await segment.start()
        send("started", None)
        pending = 0
        last = time.monotonic()

        def progress(records: int) -> None:
            # A message per fetched batch would cost more than it tells; a few a second.
            nonlocal pending, last
            pending += records
            if time.monotonic() - last > 0.2:
                send("progress", pending)
                pending, last = 0, time.monotonic()

        while True:
            kind, value = await loop.run_in_executor(None, receive)
            if kind == "close":
                return
            report = await segment.advance(value, progress)
            if pending:
                send("progress", pending)
                pending = 0
            send("report", report)
    except BaseException:
        send("error", traceback.format_exc())
    finally:
        await segment.close()


if __name__ == "__main__":
    # Through the package, so what is pickled names `projections.replay.segment`, not `__main__`.
    from projections.replay.segment import _serve as serve

    serve()
