"""Reading the events topic directly: ranges of partitions for a replay, one incident for an audit.

Nothing here consults a read model. An incident's events live in the partition its key
hashes to with Kafka's default (murmur2) partitioner: the gateway and the intake agents
produce commands keyed by incident id with it, and the decider appends each incident's
events to the partition of its commands (the topics share a partition count).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from uuid import UUID

from aiokafka import AIOKafkaConsumer
from aiokafka.partitioner import murmur2
from aiokafka.structs import ConsumerRecord, TopicPartition

from foundation.settings import Settings

FETCH_RECORDS = 5000
PARTITION_FETCH_BYTES = 8 * 1024 * 1024
METADATA_TIMEOUT_S = 30.0


def partition_for(incident_id: UUID | str, partitions: int) -> int:
    """The partition Kafka's default partitioner picks for the key `str(incident_id)`."""
    return (murmur2(str(incident_id).encode()) & 0x7FFFFFFF) % partitions


@asynccontextmanager
async def events_consumer(settings: Settings) -> AsyncIterator[AIOKafkaConsumer]:
    """A consumer outside any group, for reading the events topic at chosen positions."""
    kafka = settings.kafka
    consumer = AIOKafkaConsumer(
        bootstrap_servers=kafka.bootstrap,
        client_id=f"{kafka.client_id}-replay",
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        # As the projector reads, so a rebuild sees exactly the records it saw.
        isolation_level="read_committed",
        max_partition_fetch_bytes=PARTITION_FETCH_BYTES,
        request_timeout_ms=int(kafka.request_timeout_s * 1000),
    )
    await consumer.start()
    try:
        yield consumer
    finally:
        await consumer.stop()


async def partitions_of(consumer: AIOKafkaConsumer, topic: str) -> list[TopicPartition]:
    """The topic's partitions, waiting (bounded) for metadata; [] if the topic does not exist."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + METADATA_TIMEOUT_S
    while True:
        await consumer._client.force_metadata_update()  # noqa: SLF001 - no public refresh
        found = consumer.partitions_for_topic(topic)
        if found or loop.time() > deadline:
            return [TopicPartition(topic, p) for p in sorted(found or ())]
        await asyncio.sleep(0.2)


async def end_offsets(consumer: AIOKafkaConsumer, topic: str) -> dict[int, int]:
    """partition → the offset after its last readable record."""
    parts = await partitions_of(consumer, topic)
    if not parts:
        return {}
    ends = await consumer.end_offsets(parts)
    return {tp.partition: offset for tp, offset in ends.items()}


async def log_end(consumer: AIOKafkaConsumer, topic: str, settle_ms: int = 500,
                  limit_s: float = 3.0) -> dict[int, int]:
    """partition → the offset after its last readable record, checked by reading.

    A broker's reported end offset is not always the end: Tansu reports the first
    offset of the last record batch. So reading goes on from the reported end until a
    fetch comes back empty (or `limit_s` passed: a log being written has no end)."""
    ends = await end_offsets(consumer, topic)
    if not ends:
        return ends
    parts = [TopicPartition(topic, p) for p in ends]
    consumer.assign(parts)
    for tp in parts:
        consumer.seek(tp, ends[tp.partition])
    deadline = asyncio.get_running_loop().time() + limit_s
    while asyncio.get_running_loop().time() < deadline:
        fetched = await consumer.getmany(*parts, timeout_ms=settle_ms, max_records=FETCH_RECORDS)
        if not any(fetched.values()):
            break
        for tp, records in fetched.items():
            if records:
                ends[tp.partition] = max(ends[tp.partition], records[-1].offset + 1)
    return ends


async def read_ranges(
    consumer: AIOKafkaConsumer, topic: str, starts: Mapping[int, int], ends: Mapping[int, int],
) -> AsyncIterator[list[ConsumerRecord]]:
    """The records of each partition p from `starts[p]` (default 0) up to `ends[p]`
    (exclusive), in offset order per partition, as batches of a few thousand."""
    wanted = {TopicPartition(topic, p): end for p, end in ends.items() if starts.get(p, 0) < end}
    if not wanted:
        return
    consumer.assign(list(wanted))
    for tp in wanted:
        consumer.seek(tp, starts.get(tp.partition, 0))
    remaining = dict(wanted)
    while remaining:
        fetched = await consumer.getmany(*remaining, timeout_ms=1000, max_records=FETCH_RECORDS)
        batch: list[ConsumerRecord] = []
        for tp, records in fetched.items():
            end = remaining.get(tp)
            if end is None:
                continue
            batch.extend(r for r in records if r.offset < end)
            if records and records[-1].offset + 1 >= end:
                del remaining[tp]
        if not fetched:
            # Nothing came: make sure the wanted records still exist before waiting on.
            for tp, end in list(remaining.items()):
                if await consumer.position(tp) >= end:
                    del remaining[tp]
        if batch:
            yield batch


async def read_incident(settings: Settings, incident_id: UUID) -> list[ConsumerRecord]:
    """Every record keyed by `incident_id`, in log order, found by scanning the partition
    its key hashes to (all partitions if that one holds none), up to the log's end now."""
    topic = settings.topics.name("events")
    key = str(incident_id).encode()
    async with events_consumer(settings) as consumer:
        ends = await log_end(consumer, topic)
        if not ends:
            return []
        home = partition_for(incident_id, len(ends))
        for chosen in ([home], sorted(p for p in ends if p != home)):
            found = [record async for batch in read_ranges(consumer, topic, {}, {p: ends[p] for p in chosen})
                     for record in batch if record.key == key]
            if found:
                return sorted(found, key=lambda r: (r.partition, r.offset))
    return []
