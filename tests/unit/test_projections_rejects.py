"""What the projector refuses, and how it says so on the dead-letter topic."""

from __future__ import annotations

import json

import pytest
from aiokafka.structs import ConsumerRecord

from projections.rejects import Unreadable, decode
from projections.runner import build_batch
from projections.synthetic import synthetic_log
from aiokafka.structs import TopicPartition


def record(value: bytes | None, offset: int = 7, partition: int = 2) -> ConsumerRecord:
    return ConsumerRecord(topic="w.events", partition=partition, offset=offset, timestamp=0,
                          timestamp_type=0, key=b"k", value=value, checksum=None,
                          serialized_key_size=1, serialized_value_size=len(value or b""), headers=())


@pytest.mark.parametrize(("value", "reason"), [
    (b"{not json", "invalid JSON"),
    (b'{"type": "IncidentOpened"}', "invalid event"),
    (None, "empty record"),
])
def test_unreadable_records_say_why(value, reason):
    with pytest.raises(Unreadable) as err:
        decode(value)
    assert err.value.reason.startswith(reason)


def test_bad_hash_is_refused():
    good = next(synthetic_log(1)).model_dump(mode="json", by_alias=True)
    with pytest.raises(Unreadable, match="hash"):
        decode(json.dumps({**good, "hash": "xyz"}).encode())


def test_batch_positions_cover_rejects_and_keep_log_order():
    events = [e.model_dump_json(by_alias=True).encode() for e in synthetic_log(3)]
    batch = build_batch({
        TopicPartition("w.events", 1): [record(events[0], 10, 1), record(b"junk", 11, 1)],
        TopicPartition("w.events", 0): [record(events[1], 4, 0), record(events[2], 5, 0)],
    })
    assert [(i.partition, i.offset) for i in batch.events] == [(0, 4), (0, 5), (1, 10)]
    assert [r.offset for r, _ in batch.rejected] == [11]
    assert batch.positions == {("w.events", 0): 6, ("w.events", 1): 12}
