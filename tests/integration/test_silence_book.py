"""The intake's silence book on a real broker: a rule on the silences topic before
`catch_up` is called is in the book when it returns (the guarantee that an alert sent
after a silence was answered is swallowed), while the book keeps reading in between."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer

from contracts.silences import Matcher
from foundation.settings import Settings
from foundation.topics import ensure_topics
from streams.silence import SilenceRule
from streams.silence_book import SilenceBook

NOW = datetime.now(UTC)
RULES = 30


@pytest.fixture
async def settings(kafka, tmp_path: Path) -> Settings:
    settings = Settings(kafka={"bootstrap": kafka.bootstrap},
                        topics={"prefix": f"t-book-{uuid.uuid4().hex[:8]}", "partitions": 1}, data_dir=tmp_path)
    await ensure_topics(settings)
    return settings


def rule(n: int, *, expired: bool = False) -> SilenceRule:
    return SilenceRule(id=uuid.UUID(int=n + 1), matchers=(Matcher(label="service", op="=", value=f"svc-{n}"),),
                       starts_at=NOW - timedelta(minutes=1), ends_at=NOW + timedelta(hours=1), expired=expired)


async def test_every_rule_written_before_catch_up_is_in_the_book_when_it_returns(settings: Settings) -> None:
    book = SilenceBook(settings)
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka.bootstrap, acks="all")
    await producer.start()
    topic = settings.topics.name("silences")
    try:
        assert await book.catch_up(10) and book.silencer({"service": "svc-0"}, NOW) is None
        for n in range(RULES):
            # As the decider does before it answers: the rule is acknowledged, then the answer.
            sent = rule(n)
            await producer.send_and_wait(topic, sent.model_dump_json().encode(), key=str(sent.id).encode())
            assert await book.catch_up(10)
            silencer = book.silencer({"service": f"svc-{n}"}, NOW)
            assert silencer is not None and silencer.stream == sent.id, f"rule {n} not read by catch_up"
        # An expiry is read the same way: the next alert of that service goes through.
        await producer.send_and_wait(topic, rule(3, expired=True).model_dump_json().encode(),
                                     key=str(rule(3).id).encode())
        assert await book.catch_up(10) and book.silencer({"service": "svc-3"}, NOW) is None
        assert book.silencer({"service": "svc-4"}, NOW) is not None
    finally:
        await producer.stop()
        await book.stop()
