"""When a batch fails on its own data: telling a bad event from a bad server, and
applying the batch event by event so one bad event cannot stall the log."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence

import asyncpg
from aiokafka.errors import KafkaError
from aiokafka.structs import ConsumerRecord

from projections.apply import apply_batch
from projections.replay.switch import HOLD_OFF_SWITCH
from projections.runner.batch import Batch
from projections.runner.connections import DATABASE_ERRORS

log = logging.getLogger("warroom.projector")

# A batch refused this many times for its data is applied event by event.
POISON_AFTER = 2

DeadLetter = Callable[[Sequence[tuple[ConsumerRecord, str]]], Awaitable[None]]


class SystemicFailure(RuntimeError):
    """Every event of a batch failed: a fault of this process or its database, not of the events."""


def is_data_error(err: BaseException) -> bool:
    """Whether the events, not a server, are at fault: PostgreSQL classes 22 (data
    exception) and 23 (integrity), or a plain Python error while folding them."""
    if isinstance(err, (asyncpg.DataError, asyncpg.IntegrityConstraintViolationError)):
        return True
    return not isinstance(err, (*DATABASE_ERRORS, KafkaError, SystemicFailure))


async def apply_one_by_one(conn: asyncpg.Connection, schema: str, projection: str, batch: Batch,
                           dead_letter: DeadLetter) -> int:
    """Apply `batch` event by event, each under a savepoint, dead-letter the events that
    cannot be applied (with the batch's rejects) and record the batch's offsets, in one
    transaction; return how many events were applied. If every event fails the fault is
    ours, not the events': nothing is dead-lettered and `SystemicFailure` is raised."""
    applied = 0
    refused: list[tuple[ConsumerRecord, str]] = []
    async with conn.transaction():
        # Held to commit: a savepoint rolled back below releases only its own hold.
        await conn.execute(HOLD_OFF_SWITCH, schema)
        for item in batch.events:
            position = {(item.topic, item.partition): item.offset + 1}
            try:
                result = await apply_batch(conn, schema, [item], position, projection=projection)
                applied += result.applied
            except Exception as err:  # noqa: BLE001
                if not is_data_error(err):
                    raise
                log.exception("%s[%d]@%d cannot be applied", item.topic, item.partition, item.offset)
                refused.append((item.record, f"cannot be applied: {type(err).__name__}: {err}"))
        if len(refused) == len(batch.events) > 1:
            raise SystemicFailure(f"all {len(refused)} events of the batch failed; not dead-lettering")
        await dead_letter(batch.rejected + refused)
        await apply_batch(conn, schema, [], batch.positions, projection=projection)
    return applied
