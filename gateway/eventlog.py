"""Raw events fetched from the log itself, by the (partition, offset) the projector noted."""

from __future__ import annotations

import asyncio
import json
import time
from uuid import UUID

from aiokafka import AIOKafkaConsumer, TopicPartition

from foundation.settings import Settings

# Reading on is cheaper than a new fetch when the next wanted offset is this close.
SEEK_GAP = 200
FETCH_MAX_RECORDS = 500


class EventNotInLog(LookupError):
    """An offset the read model names is not (or no longer) in the log, or holds another record."""


class EventLog:
    """Reads records of the events topic at known positions. One reader at a time."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._topic = settings.topics.name("events")
        self._consumer: AIOKafkaConsumer | None = None
        self._lock = asyncio.Lock()

    async def start(self) -> None:
        kafka = self._settings.kafka
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=kafka.bootstrap,
            client_id=f"{kafka.client_id}-gateway-events",
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            request_timeout_ms=int(kafka.request_timeout_s * 1000),
        )
        await self._consumer.start()

    async def stop(self) -> None:
        if self._consumer is not None:
            await self._consumer.stop()

    async def read_incident(self, incident_id: UUID, rows: list[tuple[int, int, int]],
                            timeout_s: float = 10.0) -> list[bytes]:
        """The records of `incident_id` at `rows` (version, partition, offset), in that order.

        Each is checked to be the event of that incident at that version: positions are
        where the read model saw them, and a log that went back holds other records there.
        Raises EventNotInLog for one that is missing or another, TimeoutError as `read`.
        """
        values = await self.read([(partition, offset) for _, partition, offset in rows], timeout_s)
        for (version, partition, offset), value in zip(rows, values):
            try:
                event = json.loads(value)
                found = (event.get("incident_id"), event.get("version"))
            except (ValueError, AttributeError):
                found = None
            if found != (str(incident_id), version):
                raise EventNotInLog(f"{self._topic}[{partition}] at offset {offset} is not version {version} of "
                                    f"incident {incident_id} (found {found}): the log is not the one the read "
                                    f"model was made of")
        return values

    async def read(self, positions: list[tuple[int, int]], timeout_s: float = 10.0) -> list[bytes]:
        """The stored values at `positions` (partition, offset), in the order given.

        Raises EventNotInLog for a position with no record, TimeoutError when the
        broker does not deliver them within `timeout_s`.
        """
        assert self._consumer is not None, "EventLog.start() was not awaited"
        by_partition: dict[int, set[int]] = {}
        for partition, offset in positions:
            by_partition.setdefault(partition, set()).add(offset)
        found: dict[tuple[int, int], bytes] = {}
        deadline = time.monotonic() + timeout_s
        async with self._lock, asyncio.timeout(timeout_s):
            for partition, offsets in sorted(by_partition.items()):
                tp = TopicPartition(self._topic, partition)
                values = await self._read_partition(tp, sorted(offsets), deadline)
                found.update(((partition, offset), value) for offset, value in values.items())
        return [found[position] for position in positions]

    async def _read_partition(self, tp: TopicPartition, offsets: list[int], deadline: float) -> dict[int, bytes]:
        consumer = self._consumer
        assert consumer is not None
        consumer.assign([tp])
        wanted = set(offsets)
        found: dict[int, bytes] = {}
        position: int | None = None
        index = 0
        while index < len(offsets):
            target = offsets[index]
            if position is None or target < position or target - position > SEEK_GAP:
                consumer.seek(tp, target)
                position = target
            wait_ms = max(1, int((deadline - time.monotonic()) * 1000))
            batch = await consumer.getmany(tp, timeout_ms=min(wait_ms, 1000), max_records=FETCH_MAX_RECORDS)
            records = batch.get(tp, [])
            if not records:
                end = (await consumer.end_offsets([tp]))[tp]
                if target >= end:
                    raise EventNotInLog(f"{tp.topic}[{tp.partition}] has no offset {target} (end {end})")
                continue
            for record in records:
                position = record.offset + 1
                if record.offset in wanted and record.value is not None:
                    found[record.offset] = record.value
            while index < len(offsets) and offsets[index] < position:
                if offsets[index] not in found:
                    raise EventNotInLog(f"{tp.topic}[{tp.partition}] has no record at {offsets[index]}")
                index += 1
        return found
