"""`warroom replay`: rebuild every read model from the log, verify it, switch to it.

1. Rebuild: a fresh schema `<live>_r<timestamp>` is migrated and filled from offset 0
   of the events topic up to where the live schema stands (the log's end if there is
   no live schema), by segments of partitions running in parallel processes
   (`projections.replay.segment`). The live schema keeps serving meanwhile.
2. Catch up: while the live projector goes on, the rebuilt schema follows it in rounds
   until only a little is left.
3. Verify: each table's row count and checksum must equal the digests of an
   independent fold of the same events (`projections.replay.expected`, `projections.replay.verify`).
4. Switch (`projections.replay.switch`): projector batches are held off, the rebuilt schema
   is brought to exactly the live offsets and verified again, the change feed is moved
   over and the schemas are renamed, all in one transaction. The old schema is kept as
   `<live>_old<timestamp>` until `--drop-old`.

With `verify_only` there is no switch: the rebuilt schema is verified, compared table
by table with the live one at the same offsets (in one snapshot of the live schema,
so the projector is not held off), and dropped.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import asyncpg

from projections import offsets
from projections.apply import PROJECTION
from projections.replay.expected import Digest, ServiceTally, offsets_digest, services_digest
from projections.replay.log_reader import end_offsets, events_consumer, log_end
from projections.replay.rebuild import write_services
from projections.schema import migrate, quote_ident
from projections.replay.segment import Report, Segment, SegmentProcess
from projections.replay.switch import (
    END_REPLAY, ONE_REPLAY, SCHEMA_EXISTS, TABLE_EXISTS, abandoned_rebuilds, drop_schema, fresh_name, old_schemas,
    stop_writers, swap,
)
from projections.replay.verify import Mismatch, compare_schemas, mismatches, observed, whole_rows
from foundation.settings import Settings

log = logging.getLogger("warroom.replay")

# Catch-up rounds stop once fewer events than this are left; the rest is applied while
# projector batches are held off, which should take a moment, not minutes.
SWITCH_BACKLOG = 5_000
CATCH_UP_ROUNDS = 5

ProgressSink = Callable[[int, int], None]
"""Called with (records read, records to read) as a replay goes on."""


class ReplayError(RuntimeError):
    """The replay could not be completed; the live schema is untouched."""


@dataclass
class ReplayOutcome:
    """What a replay did. `valid` is False when the rebuilt schema failed verification."""

    live: str
    rebuilt: str
    switched: bool = False
    old: str | None = None
    dropped: list[str] = field(default_factory=list)
    jobs: int = 1
    records: int = 0
    applied: int = 0
    repeated: int = 0
    unreadable: int = 0
    rebuild_seconds: float = 0.0
    total_seconds: float = 0.0
    mismatches: list[Mismatch] = field(default_factory=list)
    live_differences: list[Mismatch] | None = None

    @property
    def valid(self) -> bool:
        return not self.mismatches

    @property
    def rate(self) -> float:
        """Records rebuilt per second, from offset 0 to where the live schema stood."""
        return self.records / self.rebuild_seconds if self.rebuild_seconds else 0.0


async def live_offsets(conn: asyncpg.Connection, schema: str, topic: str) -> dict[int, int]:
    """partition → next offset the live read models will apply."""
    return await offsets.load_topic(conn, schema, PROJECTION, topic)


async def replay(settings: Settings, *, verify_only: bool = False, drop_old: bool = False,
                 jobs: int | None = None, keep: bool = False, progress: ProgressSink | None = None) -> ReplayOutcome:
    """Rebuild, verify and (unless `verify_only`) switch; see the module docstring.

    Raises ReplayError when it cannot start or finish, leaving the live schema as it was;
    a rebuilt schema that fails verification is reported in the outcome, not switched to.
    The rebuilt schema is dropped unless it became live, or `keep` is set.
    """
    live = settings.postgres.schema_name
    conn = await asyncpg.connect(settings.postgres.dsn, timeout=settings.postgres.connect_timeout_s,
                                 server_settings={"application_name": "warroom-replay"})
    try:
        if not await conn.fetchval(ONE_REPLAY, live):
            raise ReplayError(f"another replay of schema {live} is running")
        try:
            return await _Replay(settings, conn, progress).run(verify_only=verify_only, drop_old=drop_old,
                                                                jobs=jobs, keep=keep)
        finally:
            await conn.execute(END_REPLAY, live)
    finally:
        await conn.close()


async def drop_old_schemas(settings: Settings) -> list[str]:
    """Drop the schemas earlier switches kept (`<live>_old<timestamp>`); their names."""
    live = settings.postgres.schema_name
    conn = await asyncpg.connect(settings.postgres.dsn, timeout=settings.postgres.connect_timeout_s)
    try:
        names = await old_schemas(conn, live)
        for name in names:
            await drop_schema(conn, name)
        return names
    finally:
        await conn.close()


class _Replay:
    def __init__(self, settings: Settings, conn: asyncpg.Connection, progress: ProgressSink | None) -> None:
        self.settings = settings
        self.conn = conn
        self.live = settings.postgres.schema_name
        self.topic = settings.topics.name("events")
        self.sink = progress
        self.done = 0
        self.total = 0
        self.segments: list[Segment | SegmentProcess] = []
        self.reports: dict[int, Report] = {}

    async def run(self, *, verify_only: bool, drop_old: bool, jobs: int | None, keep: bool) -> ReplayOutcome:
        started = time.perf_counter()
        for name in await abandoned_rebuilds(self.conn, self.live):
            log.warning("dropping %s, left behind by a replay that did not finish", name)
            await drop_schema(self.conn, name)
        has_live = await self._has_live()
        async with events_consumer(self.settings) as consumer:
            # With a live schema its offsets are the targets; without, the log's end.
            ends = await (end_offsets if has_live else log_end)(consumer, self.topic)
        if not ends:
            raise ReplayError(f"topic {self.topic} does not exist")
        stood = await live_offsets(self.conn, self.live, self.topic) if has_live else ends
        targets = {p: stood.get(p, 0) for p in ends}
        rebuilt = await fresh_name(self.conn, self.live, "r")
        outcome = ReplayOutcome(live=self.live, rebuilt=rebuilt)
        await migrate(self.conn, rebuilt)
        switched = False
        try:
            outcome.jobs = await self._start_segments(rebuilt, targets, jobs)
            log.info("rebuilding %s into %s with %d process(es)", self.live, rebuilt, outcome.jobs)
            bulk_started = time.perf_counter()
            await self._advance(targets)
            outcome.rebuild_seconds = time.perf_counter() - bulk_started
            outcome.records = self.done
            if has_live:
                await self._catch_up()
            await write_services(self.conn, rebuilt, self._touched())
            outcome.mismatches = await self._verify(rebuilt)
            if outcome.mismatches:
                log.error("the rebuilt schema does not match the log: %s", "; ".join(map(str, outcome.mismatches)))
            elif verify_only:
                if has_live:
                    outcome.live_differences, outcome.mismatches = await self._compare_with_live(rebuilt)
            else:
                outcome.old = await self._switch(rebuilt, has_live, outcome)
                switched = not outcome.mismatches
        finally:
            await self._close_segments()
            if not switched and not keep:
                await drop_schema(self.conn, rebuilt)
        outcome.switched = switched
        self._count(outcome)
        if switched and drop_old:
            outcome.dropped = await old_schemas(self.conn, self.live)
            for name in outcome.dropped:
                await drop_schema(self.conn, name)
        outcome.total_seconds = time.perf_counter() - started
        return outcome

    # --- segments -------------------------------------------------------------------

    async def _start_segments(self, rebuilt: str, targets: Mapping[int, int], jobs: int | None) -> int:
        busy = sum(1 for end in targets.values() if end > 0)
        count = max(1, min(jobs or os.cpu_count() or 1, busy or 1))
        shares: list[list[int]] = [[] for _ in range(count)]
        loads = [0] * count
        # Every partition has a segment, empty ones too: events may reach them while we
        # catch up. Biggest first, each to the least loaded segment.
        for partition in sorted(targets, key=lambda p: (-targets[p], p)):
            least = loads.index(min(loads))
            shares[least].append(partition)
            loads[least] += targets[partition]
        kind = Segment if count == 1 else SegmentProcess
        self.segments = [kind(self.settings, rebuilt, share) for share in shares if share]
        await asyncio.gather(*(segment.start() for segment in self.segments))
        return len(self.segments)

    async def _close_segments(self) -> None:
        await asyncio.gather(*(segment.close() for segment in self.segments), return_exceptions=True)

    async def _advance(self, targets: Mapping[int, int]) -> None:
        """Every segment up to `targets`."""
        positions = self._positions()
        self.total += sum(max(0, end - positions.get(p, 0)) for p, end in targets.items())
        self._tick(0)
        reports = await asyncio.gather(*(segment.advance(targets, self._tick) for segment in self.segments))
        for index, report in enumerate(reports):
            self.reports[index] = report
        self.done = sum(r.records for r in self.reports.values())
        self.total = max(self.total, self.done)
        self._tick(0)

    async def _reach(self, stood: Mapping[int, int]) -> None:
        """Advance to exactly the live schema's offsets `stood`, or raise ReplayError."""
        await self._advance(stood)
        reached = self._positions()
        behind = {p: (reached.get(p, 0), offset) for p, offset in stood.items() if reached.get(p, 0) != offset}
        if behind:
            raise ReplayError(f"the rebuild did not reach the live offsets (partition: (rebuilt, live)): {behind}")

    def _tick(self, records: int) -> None:
        self.done += records
        if self.sink is not None:
            self.sink(self.done, max(self.total, self.done))

    def _positions(self) -> dict[int, int]:
        return {p: o for report in self.reports.values() for p, o in report.positions.items()}

    def _touched(self) -> dict:
        touched: dict = {}
        for report in self.reports.values():
            for name, at in report.touched.items():
                touched[name] = max(at, touched.get(name, at))
        return touched

    # --- the phases -----------------------------------------------------------------

    async def _has_live(self) -> bool:
        return bool(await self.conn.fetchval(SCHEMA_EXISTS, self.live)) and bool(
            await self.conn.fetchval(TABLE_EXISTS, f"{quote_ident(self.live)}.projection_offsets"))

    async def _catch_up(self) -> None:
        """Follow the live projector until little is left (it may be faster than us)."""
        for _ in range(CATCH_UP_ROUNDS):
            stood = await live_offsets(self.conn, self.live, self.topic)
            positions = self._positions()
            behind = sum(max(0, end - positions.get(p, 0)) for p, end in stood.items())
            if behind <= SWITCH_BACKLOG:
                return
            await self._advance(stood)

    def _expected(self) -> dict[str, Digest]:
        digests: dict[str, Digest] = {}
        tallies: dict[str, ServiceTally] = {}
        for report in self.reports.values():
            for table, digest in report.digests.items():
                digests.setdefault(table, Digest()).__iadd__(digest)
            for name, tally in report.tallies.items():
                tallies[name] = tallies[name].merge(tally) if name in tallies else tally
        digests["services"] = services_digest(tallies)
        digests["projection_offsets"] = offsets_digest(PROJECTION, self.topic, self._positions())
        return digests

    async def _verify(self, rebuilt: str, conn: asyncpg.Connection | None = None) -> list[Mismatch]:
        expected = self._expected()
        return mismatches(expected, await observed(conn or self.conn, rebuilt, tuple(expected)))

    async def _compare_with_live(self, rebuilt: str) -> tuple[list[Mismatch], list[Mismatch]]:
        """Bring the rebuilt schema to the offsets of one snapshot of the live schema, then
        compare the two table by table; also verify the rebuilt schema again there."""
        pg = self.settings.postgres
        snapshot = await asyncpg.connect(pg.dsn, timeout=pg.connect_timeout_s)
        try:
            async with snapshot.transaction(isolation="repeatable_read", readonly=True):
                await self._reach(await live_offsets(snapshot, self.live, self.topic))
                await write_services(self.conn, rebuilt, self._touched())
                found = await self._verify(rebuilt)
                differences = mismatches(await whole_rows(snapshot, self.live), await whole_rows(self.conn, rebuilt))
            return differences, found
        finally:
            await snapshot.close()

    async def _switch(self, rebuilt: str, has_live: bool, outcome: ReplayOutcome) -> str | None:
        old = await fresh_name(self.conn, self.live, "old") if has_live else None
        held = time.perf_counter()
        async with self.conn.transaction():
            if has_live:
                await stop_writers(self.conn, self.live)
                verified = self._positions()
                await self._reach(await live_offsets(self.conn, self.live, self.topic))
                # Checked again only if this last step added something: the check reads
                # every table, and the projector waits meanwhile.
                if self._positions() != verified:
                    await write_services(self.conn, rebuilt, self._touched())
                    outcome.mismatches = await self._verify(rebuilt)
                    if outcome.mismatches:
                        raise ReplayError("the rebuilt schema does not match the log after catching up: "
                                          + "; ".join(map(str, outcome.mismatches)))
                await swap(self.conn, self.live, rebuilt, old)
            else:
                await self.conn.execute(f"ALTER SCHEMA {quote_ident(rebuilt)} RENAME TO {quote_ident(self.live)}")
        log.info("switched %s to the rebuilt schema (projector held off %.3fs); the old one is %s",
                 self.live, time.perf_counter() - held, old)
        return old

    def _count(self, outcome: ReplayOutcome) -> None:
        outcome.applied = sum(r.applied for r in self.reports.values())
        outcome.repeated = sum(r.repeated for r in self.reports.values())
        outcome.unreadable = sum(r.unreadable for r in self.reports.values())


__all__ = ["ReplayError", "ReplayOutcome", "compare_schemas", "drop_old_schemas", "live_offsets", "replay"]
