"""The runner's pure part: how fetched records become a batch."""

from __future__ import annotations

from aiokafka.structs import ConsumerRecord, TopicPartition

from projections.runner.batch import build_batch
from projections.synthetic import synthetic_log


def record(value: bytes | None, offset: int = 7, partition: int = 2) -> ConsumerRecord:
    return ConsumerRecord(topic="w.events", partition=partition, offset=offset, timestamp=0,
                          timestamp_type=0, key=b"k", value=value, checksum=None,
                          serialized_key_size=1, serialized_value_size=len(value or b""), headers=())


async def test_batch_positions_cover_rejects_and_keep_log_order():
    events = [e.model_dump_json(by_alias=True).encode() for e in synthetic_log(3)]
    batch = await build_batch({
        TopicPartition("w.events", 1): [record(events[0], 10, 1), record(b"junk", 11, 1)],
        TopicPartition("w.events", 0): [record(events[1], 4, 0), record(events[2], 5, 0)],
    })
    assert [(i.partition, i.offset) for i in batch.events] == [(0, 4), (0, 5), (1, 10)]
    assert [r.offset for r, _ in batch.rejected] == [11]
    assert batch.positions == {("w.events", 0): 6, ("w.events", 1): 12}
