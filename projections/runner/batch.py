"""How records fetched from `<prefix>.events` become a batch: decoded events in log
order, the offsets they take each partition to, and the records that are not events
(dead-lettered by the projector; their offsets count as consumed)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from aiokafka.structs import ConsumerRecord, TopicPartition

from foundation.dead_letters import Poison
from projections.logged import LoggedEvent
from projections.rejects import decode

# Records decoded between two yields to the event loop.
DECODE_SLICE = 100


@dataclass
class Batch:
    """Decoded events in log order, the offsets they take each partition to, and rejects."""

    events: list[LoggedEvent] = field(default_factory=list)
    positions: dict[tuple[str, int], int] = field(default_factory=dict)
    rejected: list[tuple[ConsumerRecord, str]] = field(default_factory=list)
    # Which seek the records were read after; a batch read before the latest seek is stale.
    generation: int = 0

    def __len__(self) -> int:
        return len(self.events) + len(self.rejected)


async def build_batch(records: dict[TopicPartition, list[ConsumerRecord]]) -> Batch:
    """Decode fetched records, partition by partition in offset order.

    Yields to the event loop every `DECODE_SLICE` records, so the batch being applied
    meanwhile goes on with its next statement as soon as PostgreSQL answers."""
    batch = Batch()
    for tp in sorted(records, key=lambda tp: (tp.topic, tp.partition)):
        recs = records[tp]
        for start in range(0, len(recs), DECODE_SLICE):
            _decode_into(batch, recs[start:start + DECODE_SLICE])
            await asyncio.sleep(0)
        if recs:
            batch.positions[(tp.topic, tp.partition)] = recs[-1].offset + 1
    return batch


def _decode_into(batch: Batch, records: list[ConsumerRecord]) -> None:
    for record in records:
        try:
            event = decode(record.value)
        except Poison as err:
            batch.rejected.append((record, err.reason))
        else:
            batch.events.append(LoggedEvent(event, record.partition, record.offset, record.topic,
                                            record=record))
