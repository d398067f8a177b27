"""Kafka for benchmarks: topics and settings of a fresh prefix, a backlog preloaded
before the system under test starts, waiting for its output, and the raw
produce → consume round trip that latency rows are compared with."""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from bench.harness.measure import cpu_seconds, percentiles
from foundation.settings import Settings, load_settings
from foundation.topics import ensure_topics


def fresh_prefix(what: str) -> str:
    """A topic prefix (and schema name) no earlier run used: runs never see each other's records."""
    return f"bench_{what}_{uuid.uuid4().hex[:6]}"


def bench_settings(bootstrap: str, prefix: str, data_dir: Path | None = None, **sections: object) -> Settings:
    """Settings for `prefix`'s topics on `bootstrap`, quiet logs; `sections` override more."""
    extra = {"data_dir": data_dir / prefix} if data_dir else {}
    return load_settings(kafka={"bootstrap": bootstrap}, topics={"prefix": prefix, **sections.pop("topics", {})},
                         log_level="warning", **extra, **sections)


async def preload(settings: Settings, kind: str, records: list[tuple[bytes, bytes]]) -> None:
    """Create the prefix's topics and put `records` (key, value) on its `kind` topic."""
    await ensure_topics(settings)
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka.bootstrap, enable_idempotence=False, acks="all",
                                linger_ms=10, max_batch_size=512 * 1024)
    await producer.start()
    try:
        topic = settings.topics.name(kind)
        acks = [await producer.send(topic, value, key=key) for key, value in records]
        await asyncio.gather(*acks)
    finally:
        await producer.stop()


async def output_span(bootstrap: str, sink: str, expected: int, pid: int, timeout: float,
                      starts: tuple[str, ...] = ()) -> dict[str, float]:
    """Wait until `expected` records are on `sink`; the span from the earliest record on
    `starts` (default: the sink itself) to the latest on the sink, by broker timestamps,
    and the CPU that process `pid` used from the first output seen to the last.

    Timing by the records' own timestamps leaves out start-up and group joins."""
    starts = starts or (sink,)
    consumer = AIOKafkaConsumer(*{*starts, sink}, bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                                enable_auto_commit=False, metadata_max_age_ms=500)
    await consumer.start()
    first = last = cpu_at_first = None
    seen = 0
    deadline = time.monotonic() + timeout
    try:
        while seen < expected:
            if time.monotonic() > deadline:
                raise TimeoutError(f"only {seen} of {expected} records on {sink} after {timeout:.0f}s")
            for tp, records in (await consumer.getmany(timeout_ms=200, max_records=10_000)).items():
                if cpu_at_first is None and records:
                    cpu_at_first = cpu_seconds(pid)
                for record in records:
                    if tp.topic in starts:
                        first = record.timestamp if first is None else min(first, record.timestamp)
                    if tp.topic == sink:
                        seen += 1
                        last = record.timestamp if last is None else max(last, record.timestamp)
        cpu = cpu_seconds(pid) - cpu_at_first
    finally:
        await consumer.stop()
    return {"records": seen, "span_s": max((last - first) / 1000, 0.001), "cpu_s": cpu}


async def raw_roundtrip(bootstrap: str, topic: str, partitions: int, rate: float, seconds: float) -> dict:
    """Produce at `rate` for `seconds` (open loop) to a new `topic`; time each record from
    send to consumption by one consumer assigned every partition."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, partitions, 1)])
    finally:
        await admin.close()
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=0, enable_idempotence=False)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, fetch_max_wait_ms=100,
                                auto_offset_reset="latest")
    await producer.start()
    await consumer.start()
    try:
        parts = [TopicPartition(topic, p) for p in sorted(await producer.partitions_for(topic))]
        consumer.assign(parts)
        await consumer.seek_to_end(*parts)
        for tp in parts:
            await consumer.position(tp)
        total = int(rate * seconds)
        sent: dict[int, float] = {}
        received: dict[int, float] = {}

        async def consume() -> None:
            while len(received) < total:
                batches = await consumer.getmany(timeout_ms=200)
                now = time.perf_counter()
                for records in batches.values():
                    for record in records:
                        received.setdefault(int(record.value), now)

        reader = asyncio.create_task(consume())
        t0 = time.perf_counter()
        pending = []
        for i in range(total):
            delay = t0 + i / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            sent[i] = time.perf_counter()
            pending.append(await producer.send(topic, str(i).encode(), key=str(i % 97).encode()))
        await asyncio.gather(*pending)
        try:
            await asyncio.wait_for(reader, 30)
        except TimeoutError:
            pass
        latencies = [received[i] - sent[i] for i in received if i in sent]
        return {"sent": total, "received": len(received), **percentiles(latencies)}
    finally:
        await consumer.stop()
        await producer.stop()
