"""Telling, on a real broker, whether it still holds the log a reader read."""

from __future__ import annotations

import asyncio

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from harness.servers import come_back_empty
from foundation.log_identity import LogProbe
from foundation.settings import KafkaSettings

TOPIC = "log-identity.events"


async def write(bootstrap: str, bursts: list[int]) -> dict[int, int]:
    """Records in bursts sent as one batch each; partition → next offset."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(TOPIC, 2, 1)])
    finally:
        await admin.close()
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=50)
    await producer.start()
    try:
        read: dict[int, int] = {}
        for burst in bursts:
            for partition in (0, 1):
                acks = [await producer.send(TOPIC, b"x", partition=partition) for _ in range(burst)]
                written = await asyncio.gather(*acks)
                read[partition] = written[-1].offset + 1
        return read
    finally:
        await producer.stop()


async def test_the_same_log_is_recognised_then_one_that_came_back_empty_is_not(own_kafka) -> None:
    # Last batches of several records: Tansu reports their first offset as the end.
    read = await write(own_kafka.bootstrap, [1, 6, 3])
    probe = LogProbe(KafkaSettings(bootstrap=own_kafka.bootstrap), "test")
    await probe.start()
    try:
        why, cluster = await probe.check(None, TOPIC, read)
        assert why is None and cluster
        assert await probe.check(cluster, TOPIC, read) == (None, cluster)
    finally:
        await probe.stop()

    await asyncio.to_thread(come_back_empty, own_kafka)
    await write(own_kafka.bootstrap, [2])
    probe = LogProbe(KafkaSettings(bootstrap=own_kafka.bootstrap), "test")
    await probe.start()
    try:
        why, now = await probe.check(cluster, TOPIC, read)
        assert now != cluster and "another cluster" in why
        # Without the cluster to go by, the offsets tell as well.
        why, _ = await probe.check(None, TOPIC, read)
        assert why is not None and "partition 0 ends at" in why and "read up to 10" in why
    finally:
        await probe.stop()
