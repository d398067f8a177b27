"""The gateway's reader of the log serves a record only if it is the event the read model
says is there: after a log went back, a position may hold another incident's record."""

from __future__ import annotations

import uuid

import pytest
from aiokafka import AIOKafkaProducer

from gateway.eventlog import EventLog, EventNotInLog
from testing.synthetic import synthetic_log
from foundation.settings import Settings
from foundation.topics import ensure_topics


async def test_a_position_holding_another_record_is_refused(kafka) -> None:
    settings = Settings(kafka={"bootstrap": kafka.bootstrap},
                        topics={"prefix": f"t-reader-{uuid.uuid4().hex[:8]}", "partitions": 1})
    await ensure_topics(settings)
    events = list(synthetic_log(6, seed=5, concurrent=2))
    producer = AIOKafkaProducer(bootstrap_servers=kafka.bootstrap)
    await producer.start()
    try:
        written = [await producer.send_and_wait(settings.topics.name("events"), e.model_dump_json().encode(),
                                                key=str(e.incident_id).encode()) for e in events]
    finally:
        await producer.stop()
    first, other = events[0].incident_id, next(e.incident_id for e in events if e.incident_id != events[0].incident_id)
    mine = [(e.version, w.partition, w.offset) for e, w in zip(events, written) if e.incident_id == first]
    reader = EventLog(settings)
    await reader.start()
    try:
        values = await reader.read_incident(first, mine)
        assert values == [e.model_dump_json().encode() for e in events if e.incident_id == first]
        with pytest.raises(EventNotInLog, match="is not version"):
            await reader.read_incident(other, mine[:1])  # the position of another incident's event
        with pytest.raises(EventNotInLog, match="is not version"):
            await reader.read_incident(first, [(mine[0][0] + 1, *mine[0][1:])])  # right incident, wrong version
    finally:
        await reader.stop()
