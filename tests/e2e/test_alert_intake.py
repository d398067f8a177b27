"""Producers end to end: a real Alertmanager delivers to the gateway's webhook, incidents
open and stream over SSE, the same alerts again change nothing, resolving them
mitigates; alerts posted directly work the same; poison is counted on /metrics."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from harness.servers import start_or_give_up
from harness.waiting import wait_for_async
from sse_client import open_stream
from stack import Stack
from warroom.servers import HttpServer, start_alertmanager

DRAIN_TIMEOUT_S = 60


@pytest.fixture(scope="module")
def alertmanager(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[HttpServer]:
    """A real Alertmanager whose webhook receiver is the stack's gateway, with an ingest token."""
    server = start_or_give_up("Alertmanager", lambda: start_alertmanager(
        tmp_path_factory.mktemp("alertmanager"), webhook_url=f"{stack.base_url}/v1/alerts/alertmanager",
        webhook_bearer_token=stack.token("ingest", sub="alertmanager"), group_by=["service"]))
    yield server
    server.stop()


def unique_service() -> str:
    return f"am-{uuid.uuid4().hex[:10]}"


def am_alert(service: str, name: str, *, resolved: bool = False) -> dict:
    """An alert as a Prometheus server posts it to Alertmanager's API; a past endsAt resolves it."""
    now = datetime.now(UTC)
    alert = {"labels": {"alertname": name, "service": service, "severity": "critical"},
             "annotations": {"summary": f"{name} on {service}"},
             "startsAt": (now - timedelta(minutes=5)).isoformat(),
             "generatorURL": f"http://prometheus.example/graph?g0.expr={name}"}
    if resolved:
        alert["endsAt"] = (now - timedelta(seconds=1)).isoformat()
    return alert


async def post_to_alertmanager(server: HttpServer, *alerts: dict) -> None:
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as client:
        response = await client.post("/api/v2/alerts", json=list(alerts))
        assert response.status_code == 200, response.text


async def webhook_deliveries(stack: Stack) -> int:
    """How many Alertmanager notifications the gateway has accepted (its own /metrics)."""
    async with httpx.AsyncClient(base_url=stack.base_url, timeout=10) as client:
        text = (await client.get("/metrics")).text
    pattern = r'warroom_http_requests_total\{[^}]*route="/v1/alerts/alertmanager"[^}]*status="202"[^}]*\} (\S+)'
    return sum(int(float(value)) for value in re.findall(pattern, text))


async def caught_up(stack: Stack) -> None:
    """Wait until the worker has committed, stage by stage, what was on its input topics:
    the alerts, then the notices and commands they caused, then the events, then the
    notices those caused. New records arriving meanwhile (Alertmanager repeats) do not
    hold it up."""
    settings = stack.settings
    group = f"{settings.topics.prefix}-streams"
    notices_and_commands = [f"{group}-intake-notices", settings.topics.name("commands")]
    stages = [[settings.topics.name("alerts")], notices_and_commands, [settings.topics.name("events")],
              notices_and_commands]
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka.bootstrap, group_id=group, enable_auto_commit=False)
    await consumer.start()
    try:
        for topics in stages:
            ends = await consumer.end_offsets(
                [TopicPartition(t, p) for t in topics for p in range(settings.topics.partitions)])

            async def reached() -> bool:
                committed = {tp: await consumer.committed(tp) or 0 for tp in ends}
                return all(committed[tp] >= end for tp, end in ends.items())

            await wait_for_async(reached, timeout=DRAIN_TIMEOUT_S, interval=0.2,
                                 message=f"the worker committing what was on {topics}")
    finally:
        await consumer.stop()


async def log_of(stack: Stack, incident: str) -> list[dict]:
    """The incident's events as they are on the events topic now, read from the log itself."""
    settings = stack.settings
    topic = settings.topics.name("events")
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka.bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        partitions = [TopicPartition(topic, p) for p in range(settings.topics.partitions)]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        found: list[dict] = []
        async def behind() -> bool:
            positions = {tp: await consumer.position(tp) for tp in ends}
            return any(positions[tp] < end for tp, end in ends.items())

        while await behind():
            for records in (await consumer.getmany(timeout_ms=500)).values():
                found += [event for r in records if (event := json.loads(r.value))["incident_id"] == incident]
        return found
    finally:
        await consumer.stop()


async def incidents_of(client: httpx.AsyncClient, service: str) -> list[dict]:
    response = await client.get("/v1/incidents", params={"service": service})
    assert response.status_code == 200, response.text
    return response.json()["items"]


async def test_alertmanager_alerts_open_stream_repeat_harmlessly_and_resolve_to_mitigated(
        stack: Stack, alertmanager: HttpServer, responder: httpx.AsyncClient) -> None:
    service = unique_service()
    alerts = [am_alert(service, "HighErrorRate"), am_alert(service, "LatencyHigh")]
    async with open_stream(responder, service=service) as stream:
        await post_to_alertmanager(alertmanager, *alerts)
        opened = await stream.next(timeout=60)
        assert opened.event == "IncidentOpened", opened
        incident = opened.json["incident_id"]
        assert opened.json["incident"]["service"] == service
        assert opened.json["incident"]["severity"] == "critical"
        attached = await stream.until(lambda m: m.event == "AlertAttached" and m.json["incident"]["alerts_firing"] == 2,
                                      timeout=60)
        assert {m.json["data"]["alertname"] for m in attached if m.event == "AlertAttached"} == {
            "HighErrorRate", "LatencyHigh"}

        # The same alerts again: Alertmanager delivers them again (it repeats every second too).
        await post_to_alertmanager(alertmanager, *alerts)
        seen = await webhook_deliveries(stack)
        await wait_for_async(lambda: _more(stack, seen, 2), timeout=60, message="two more webhook deliveries")
        await caught_up(stack)
        assert len(await incidents_of(responder, service)) == 1
        in_log = [e["type"] for e in await log_of(stack, incident) if e["type"] in ALERT_EVENTS]
        assert sorted(in_log) == ["AlertAttached", "AlertAttached", "IncidentOpened"], in_log
        meanwhile = drain(stream)  # correlation runs on the incident meanwhile; alerts add nothing
        assert not [m for m in meanwhile if m.event in ALERT_EVENTS], meanwhile

        # Resolved (endsAt in the past): Alertmanager sends them resolved.
        await post_to_alertmanager(alertmanager, *(am_alert(service, a["labels"]["alertname"], resolved=True)
                                                   for a in alerts))
        rest = await stream.until(lambda m: m.event == "StatusChanged" and m.json["data"]["to"] == "mitigated",
                                  timeout=60)
    resolved = [m for m in rest if m.event == "AlertResolved"]
    assert [m.json["data"]["firing_left"] for m in resolved] == [1, 0]
    assert rest[-1].json["data"]["reason"] == "all alerts resolved"
    assert rest[-1].json["incident"]["status"] == "mitigated"

    read = await responder.get(f"/v1/incidents/{incident}", params={"min_version": rest[-1].json["version"]})
    assert read.json()["alerts_firing"] == 0
    listed = (await responder.get(f"/v1/incidents/{incident}/alerts")).json()
    assert {a["alertname"]: a["status"] for a in listed} == {"HighErrorRate": "resolved", "LatencyHigh": "resolved"}
    assert all(a["annotations"]["generatorURL"].startswith("http://prometheus.example/") for a in listed)
    assert all(a["first_seen"] and a["resolved_at"] for a in listed)


ALERT_EVENTS = {"IncidentOpened", "AlertAttached", "AlertResolved"}


def drain(stream) -> list:
    """The messages the stream has received and not yet been asked for."""
    taken = []
    while not stream.messages.empty():
        message = stream.messages.get_nowait()
        if message is not None:
            taken.append(message)
    return taken


async def _more(stack: Stack, seen: int, more: int) -> bool:
    return await webhook_deliveries(stack) >= seen + more


async def test_alerts_posted_directly_open_one_incident_per_service(stack: Stack) -> None:
    services = [unique_service() for _ in range(3)]
    now = datetime.now(UTC).isoformat()
    alerts = [{"status": "firing", "labels": {"alertname": f"A{n}", "service": s}, "starts_at": now}
              for s in services for n in range(4)]
    async with stack.client("ingest", sub="pager") as ingest, stack.client("viewer") as viewer:
        one = await ingest.post("/v1/alerts", json=alerts[0])
        assert (one.status_code, one.json()) == (202, {"accepted": 1})
        many = await ingest.post("/v1/alerts", json=alerts)
        assert (many.status_code, many.json()) == (202, {"accepted": 12})
        assert (await ingest.get("/v1/incidents")).status_code == 403  # ingest only ingests
        await caught_up(stack)

        async def each_has_one() -> bool:
            found = [await incidents_of(viewer, s) for s in services]
            return all(len(f) == 1 and f[0]["alerts_firing"] == 4 for f in found) and found

        found = await wait_for_async(each_has_one, timeout=60, message="one incident per service, 4 alerts each")
        assert found[0][0]["opened_by"] == {"kind": "producer", "id": "pager"}


async def test_poison_on_the_alerts_topic_is_counted_on_metrics(stack: Stack) -> None:
    topic = stack.settings.topics.name("alerts")
    producer = AIOKafkaProducer(bootstrap_servers=stack.settings.kafka.bootstrap)
    await producer.start()
    try:
        async with httpx.AsyncClient(base_url=stack.base_url, timeout=10) as client:
            def count(text: str) -> float:
                found = re.search(r'warroom_dead_letters_total\{topic="' + re.escape(topic) + r'"\} (\S+)', text)
                return float(found.group(1)) if found else 0.0

            before = count((await client.get("/metrics")).text)
            await producer.send_and_wait(topic, b"{not an alert", key=b"poison")
            await producer.send_and_wait(topic, b'{"status": "firing"}', key=b"poison")
            await wait_for_async(lambda: _counted(client, count, before + 2), timeout=60,
                                 message="two dead letters counted on /metrics")
    finally:
        await producer.stop()


async def _counted(client: httpx.AsyncClient, count, at_least: float) -> bool:
    return count((await client.get("/metrics")).text) >= at_least

