"""Smoke tests: every server the suite starts really serves."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone

import asyncpg
import httpx
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from harness.servers import jar_cache_dir, kafka_choice
from harness.waiting import wait_for_async
from testing import ensure_kafka_jars, start_apache_kafka
from warroom.servers import start_postgres, start_tansu

pytestmark = pytest.mark.timeout(180)


async def _round_trip(bootstrap: str) -> None:
    topic = f"smoke-{uuid.uuid4().hex[:8]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, num_partitions=3, replication_factor=1)])
    finally:
        await admin.close()

    # Tansu has no idempotent producer; the plain one works on both brokers.
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=False, acks="all")
    await producer.start()
    try:
        sent = await producer.send_and_wait(topic, b"hello", key=b"incident-1")
    finally:
        await producer.stop()

    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=f"{topic}-group",
                                auto_offset_reset="earliest", enable_auto_commit=False)
    await consumer.start()
    try:
        message = await wait_for_async(consumer.getone, timeout=30,
                                       message=f"a message on {topic}")
    finally:
        await consumer.stop()
    assert (message.key, message.value) == (b"incident-1", b"hello")
    assert (message.partition, message.offset) == (sent.partition, sent.offset)


async def test_kafka_produce_and_consume(kafka) -> None:
    await _round_trip(kafka.bootstrap)


async def test_tansu_produce_and_consume(tansu) -> None:
    await _round_trip(tansu.bootstrap)


async def test_postgres_round_trip(postgres) -> None:
    connection = await asyncpg.connect(postgres.dsn)
    try:
        await connection.execute("CREATE TEMP TABLE smoke (id int PRIMARY KEY, note text)")
        await connection.execute("INSERT INTO smoke VALUES ($1, $2)", 1, "ünïcode")
        assert await connection.fetchval("SELECT note FROM smoke WHERE id = $1", 1) == "ünïcode"
    finally:
        await connection.close()


async def test_prometheus_scrapes_what_the_exporter_exposes(prometheus, exporter) -> None:
    exporter.gauge("warroom_smoke_queue_depth", labelnames=["service"]) \
        .labels(service="checkout").set(42.5)
    query = 'warroom_smoke_queue_depth{service="checkout"}'

    async with httpx.AsyncClient(base_url=prometheus.url, timeout=5) as client:
        async def scraped_value():
            response = await client.get("/api/v1/query", params={"query": query})
            response.raise_for_status()
            result = response.json()["data"]["result"]
            return result and float(result[0]["value"][1])

        assert await wait_for_async(scraped_value, timeout=30, interval=0.2,
                                    message=f"Prometheus answering {query}") == 42.5


async def test_alertmanager_lists_a_posted_alert(alertmanager) -> None:
    name = f"SmokeAlert{uuid.uuid4().hex[:6]}"
    now = datetime.now(timezone.utc)
    alert = {
        "labels": {"alertname": name, "service": "checkout", "severity": "critical"},
        "annotations": {"summary": "smoke test"},
        "startsAt": now.isoformat(),
        "endsAt": (now + timedelta(minutes=5)).isoformat(),
    }
    async with httpx.AsyncClient(base_url=alertmanager.url, timeout=5) as client:
        response = await client.post("/api/v2/alerts", json=[alert])
        assert response.status_code == 200, response.text

        async def listed():
            response = await client.get("/api/v2/alerts", params={"filter": f'alertname="{name}"'})
            response.raise_for_status()
            return response.json()

        alerts = await wait_for_async(listed, timeout=10, message=f"{name} listed")
    assert alerts[0]["labels"]["service"] == "checkout"
    assert alerts[0]["status"]["state"] in {"active", "unprocessed"}


async def test_postgres_keeps_committed_rows_across_a_crash(pg_dir) -> None:
    server = start_postgres(pg_dir, durable=False)
    try:
        connection = await asyncpg.connect(server.dsn)
        await connection.execute("CREATE TABLE kept (id int PRIMARY KEY)")
        await connection.execute("INSERT INTO kept VALUES (7)")
        await connection.close()

        server.kill()
        assert not server.alive()
        server.restart()

        connection = await asyncpg.connect(server.dsn)
        try:
            assert await connection.fetchval("SELECT id FROM kept") == 7
        finally:
            await connection.close()
    finally:
        server.stop()


async def test_broker_serves_again_after_a_restart_on_the_same_port(tmp_path) -> None:
    if kafka_choice() == "apache":
        server = start_apache_kafka(tmp_path / "kafka", jars_dir=ensure_kafka_jars(jar_cache_dir()))
    else:  # Tansu, also when the suite runs on an external broker
        server = start_tansu(tmp_path / "kafka")
    try:
        await _round_trip(server.bootstrap)
        bootstrap = server.bootstrap
        server.restart()
        assert server.bootstrap == bootstrap
        await _round_trip(server.bootstrap)
    finally:
        server.stop()
