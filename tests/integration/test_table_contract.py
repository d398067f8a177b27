"""The partition shell writes its tables around Faust's API (`streams.partition.Shell._store`):
straight into the store, to the changelog partition of the input record, through the
producer. This is the contract that makes that safe, on Apache Kafka: a table written that
way recovers after a worker restart exactly as one written with `table[key] = value`.

One worker writes both tables from the same input (`harness.table_contract`), stops; the
two changelogs must end, per key, in the same partition with the same bytes (which
partition matters once several workers share the partitions). Then a worker with no
writer at all starts on the same data directory, so what its tables hold came from
their changelogs alone; both must hold every key's last value.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from harness.table_contract import IN, PROBE
from harness.waiting import wait_for, wait_for_async

from foundation.settings import Settings
from foundation.topics import ensure_topics

PARTITIONS = 3
KEYS = 40
RECORDS = 1200  # each key written 30 times, so later values must win on recovery
HARNESS = Path(__file__).resolve().parents[1] / "harness" / "table_contract.py"
ROOT = Path(__file__).resolve().parents[2]


class ContractWorker:
    def __init__(self, settings: Settings, mode: str, dump: Path, log: Path) -> None:
        env = {**os.environ, "WARROOM_KAFKA__BOOTSTRAP": settings.kafka.bootstrap,
               "WARROOM_TOPICS__PREFIX": settings.topics.prefix,
               "WARROOM_TOPICS__PARTITIONS": str(PARTITIONS),
               "WARROOM_DATA_DIR": str(settings.data_dir), "WARROOM_LOG_LEVEL": "info",
               "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "tests")])}
        self.log = log
        self.process = subprocess.Popen([sys.executable, str(HARNESS), mode, str(dump)], cwd=ROOT, env=env,
                                        stdout=log.open("ab"), stderr=subprocess.STDOUT)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        wait_for(lambda: self.process.poll() is not None, timeout=60, message="contract worker exiting")

    def tail(self) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-30:])


async def held_once_probed(producer: AIOKafkaProducer, settings: Settings, dump: Path,
                           expected: dict[str, int], worker: ContractWorker) -> dict:
    """Probe until the worker's dump shows both tables equal to `expected`; return the dump."""
    seen: dict = {}

    async def both_hold_it() -> bool:
        if dump.exists():
            seen.update(json.loads(dump.read_text()))
            if seen.get("shell") == expected and seen.get("faust") == expected:
                return True
        assert worker.process.poll() is None, f"contract worker died:\n{worker.tail()}"
        await producer.send_and_wait(f"{settings.topics.prefix}.{PROBE}", b"probe", key=b"probe")
        return False

    try:
        await wait_for_async(both_hold_it, timeout=120, interval=1, message="both tables hold every key")
    except AssertionError as err:
        raise AssertionError(f"{err}\nheld: {seen}\nexpected: {expected}\n{worker.tail()}") from None
    return seen


async def last_written(settings: Settings, table: str) -> dict[str, tuple[int, bytes]]:
    """Per key, the partition and value of the last record on `table`'s changelog."""
    topic = f"{settings.topics.prefix}-streams-{table}-changelog"
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka.bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        partitions = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        last: dict[str, tuple[int, bytes]] = {}
        while [tp for tp in partitions if await consumer.position(tp) < ends[tp]]:
            for records in (await consumer.getmany(timeout_ms=1000)).values():
                for record in records:
                    last[record.key.decode()] = (record.partition, record.value)
        return last
    finally:
        await consumer.stop()


@pytest.fixture
def settings(apache_kafka, tmp_path: Path) -> Settings:
    import asyncio

    settings = Settings(kafka={"bootstrap": apache_kafka.bootstrap},
                        topics={"prefix": f"t-contract-{uuid.uuid4().hex[:8]}", "partitions": PARTITIONS},
                        data_dir=tmp_path / "data")
    asyncio.run(ensure_topics(settings))
    return settings


async def test_a_table_written_by_the_shell_recovers_as_one_written_by_faust(settings: Settings,
                                                                             tmp_path: Path) -> None:
    prefix = settings.topics.prefix
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka.bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(f"{prefix}.{name}", PARTITIONS, 1) for name in (IN, PROBE)])
    finally:
        await admin.close()
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka.bootstrap)
    await producer.start()
    try:
        expected: dict[str, int] = {}
        for value in range(RECORDS):
            key = f"key-{value % KEYS}"
            await producer.send(f"{prefix}.{IN}", str(value).encode(), key=key.encode())
            expected[key] = value
        await producer.flush()

        dump = tmp_path / "held.json"
        writer = ContractWorker(settings, "write", dump, tmp_path / "write.log")
        try:
            await held_once_probed(producer, settings, dump, expected, writer)
        finally:
            writer.stop()
        assert writer.process.returncode == 0, writer.tail()
        # Each key's last changelog record: in the same partition, with the same bytes.
        written = await last_written(settings, "contract-shell")
        assert written == await last_written(settings, "contract-faust")
        assert set(written) == set(expected)

        dump.unlink()
        reader = ContractWorker(settings, "read", dump, tmp_path / "read.log")
        try:
            recovered = await held_once_probed(producer, settings, dump, expected, reader)
        finally:
            reader.stop()
        assert recovered["shell"] == recovered["faust"] == expected
    finally:
        await producer.stop()
