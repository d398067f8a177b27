"""Correlation end to end through the worker: an opened incident starts a run whose
progress, findings and ranked hypotheses all land on the events topic, with Prometheus
(the harness's binary scraping an exporter this test drives) as the one configured
source; and a Prometheus that cannot be reached completes `failed`, saying why."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from harness.waiting import wait_for, wait_for_async

from contracts.commands import OpenIncident
from contracts.common import Actor
from contracts.events import EventEnvelope
from streams.correlation_agents import opening_run_id
from warroom.servers import free_port
from foundation.settings import Settings
from foundation.topics import ensure_topics

pytestmark = pytest.mark.timeout(300)

ROOT = Path(__file__).resolve().parents[2]
METRIC = "warroom_flow_requests"  # our own name: the exporter is shared by the session
ERROR_RATE = (f'(sum(rate({METRIC}_total{{{{{{label}}="{{service}}",status=~"5.."}}}}[{{window}}])) or vector(0))'
              f' / sum(rate({METRIC}_total{{{{{{label}}="{{service}}"}}}}[{{window}}]))')
REQUEST_RATE = f'sum(rate({METRIC}_total{{{{{{label}}="{{service}}"}}}}[{{window}}]))'
GOOD = f'sum(rate({METRIC}_total{{{{{{label}}="{{service}}",status!~"5.."}}}}[{{window}}]))'


def _service() -> str:
    return f"payments-{uuid.uuid4().hex[:8]}"


@contextlib.contextmanager
def worker(settings: Settings, prometheus_url: str, service: str) -> Iterator[Path]:
    """`python -m streams.worker` with Prometheus as the one configured source and an SLO
    for `service`; Loki and Kubernetes left unconfigured."""
    correlation = {
        "URL": prometheus_url, "WINDOW": "5s", "STEP": "1s",
        "SIGNALS": json.dumps({"errors": {"query": ERROR_RATE}, "traffic": {"query": REQUEST_RATE, "worse": "down"}}),
    }
    slo = {"name": "availability", "service": service, "good_query": GOOD, "total_query": REQUEST_RATE,
           "objective": 0.99, "window": "1h", "burn_window": "1m"}
    env = {
        **os.environ,
        "WARROOM_KAFKA__BOOTSTRAP": settings.kafka.bootstrap,
        "WARROOM_TOPICS__PREFIX": settings.topics.prefix,
        "WARROOM_TOPICS__PARTITIONS": str(settings.topics.partitions),
        "WARROOM_DATA_DIR": str(settings.data_dir),
        "WARROOM_LOG_LEVEL": "info",
        "WARROOM_CORRELATION__TIMEOUT_S": "3",
        "WARROOM_CORRELATION__BACKOFF_BASE_S": "0.01",
        "WARROOM_CORRELATION__BACKOFF_MAX_S": "0.05",
        # Seconds, not minutes: the baseline is the half minute of normal traffic before
        # the window, the window the quarter minute up to the incident's opening.
        "WARROOM_CORRELATION__WINDOW": "15s",
        "WARROOM_CORRELATION__SETTLE": "0s",
        "WARROOM_CORRELATION__BASELINE": "30s",
        "WARROOM_TOPOLOGY__DISCOVERY": "[]",
        "WARROOM_IMPACT__SLOS": json.dumps([slo]),
        **{f"WARROOM_CORRELATION__PROMETHEUS__{k}": v for k, v in correlation.items()},
    }
    log_path = settings.data_dir / "worker.log"
    with log_path.open("ab") as log:
        process = subprocess.Popen([sys.executable, "-m", "streams.worker"], cwd=ROOT, env=env,
                                   stdout=log, stderr=subprocess.STDOUT)
    try:
        yield log_path
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        wait_for(lambda: process.poll() is not None, timeout=60, message="worker exiting")


def _settings(kafka, tmp_path: Path) -> Settings:
    settings = Settings(kafka={"bootstrap": kafka.bootstrap},
                        topics={"prefix": f"t-corr-{uuid.uuid4().hex[:8]}", "partitions": 2},
                        data_dir=tmp_path)
    return settings


class Events:
    """The events topic, collected in the background, per incident."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.by_incident: dict[uuid.UUID, dict[int, EventEnvelope]] = defaultdict(dict)

    async def run(self) -> None:
        consumer = AIOKafkaConsumer(self.settings.topics.name("events"), bootstrap_servers=self.settings.kafka.bootstrap,
                                    auto_offset_reset="earliest", enable_auto_commit=False, metadata_max_age_ms=1000)
        await consumer.start()
        try:
            while True:
                for records in (await consumer.getmany(timeout_ms=200)).values():
                    for record in records:
                        event = EventEnvelope.model_validate_json(record.value)
                        self.by_incident[event.incident_id].setdefault(event.version, event)  # drop exact repeats
        finally:
            await consumer.stop()

    def log_of(self, incident: uuid.UUID) -> list[EventEnvelope]:
        kept = self.by_incident[incident]
        return [kept[v] for v in sorted(kept)]

    async def until_completed(self, incident: uuid.UUID, log_path: Path) -> list[EventEnvelope]:
        try:
            return await wait_for_async(
                lambda: any(e.type == "CorrelationCompleted" for e in self.log_of(incident)) and self.log_of(incident),
                timeout=180, interval=0.2, message="CorrelationCompleted")
        except AssertionError as err:
            tail = "\n".join(log_path.read_text(errors="replace").splitlines()[-40:])
            raise AssertionError(f"{err}; events: {[e.type for e in self.log_of(incident)]}\n{tail}") from None


@contextlib.asynccontextmanager
async def collected(settings: Settings) -> AsyncIterator[Events]:
    await ensure_topics(settings)
    events = Events(settings)
    task = asyncio.create_task(events.run())
    try:
        yield events
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def open_incident(settings: Settings, service: str) -> uuid.UUID:
    incident = uuid.uuid4()
    command = OpenIncident(command_id=uuid.uuid4(), incident_id=incident, actor=Actor(kind="user", id="alice"),
                           issued_at=datetime.now(UTC), title=f"{service} 5xx", service=service, severity="high")
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka.bootstrap)
    await producer.start()
    try:
        await producer.send_and_wait(settings.topics.name("commands"), command.model_dump_json(by_alias=True).encode(),
                                     key=str(incident).encode())
    finally:
        await producer.stop()
    return incident


@dataclass
class Traffic:
    errors_per_tick: int = 0


@contextlib.asynccontextmanager
async def traffic(exporter, service: str, errors_per_tick: int = 0) -> AsyncIterator[Traffic]:
    counter = exporter.counter(METRIC, "requests by service and status", ("service", "status"))
    flowing = Traffic(errors_per_tick)

    async def tick() -> None:
        while True:
            counter.labels(service=service, status="200").inc(10)
            counter.labels(service=service, status="500").inc(flowing.errors_per_tick)
            await asyncio.sleep(0.1)

    task = asyncio.create_task(tick())
    try:
        yield flowing
    finally:
        task.cancel()


async def _above(prometheus, expr: str, threshold: float, what: str) -> None:
    async def check() -> bool:
        async with httpx.AsyncClient() as http:
            result = (await http.get(f"{prometheus.url}/api/v1/query", params={"query": expr})).json()["data"]["result"]
        return bool(result) and float(result[0]["value"][1]) > threshold
    await wait_for_async(check, timeout=90, interval=0.25, message=what)


async def _error_spike_after_normal_traffic(prometheus, flowing: Traffic, service: str) -> None:
    """Normal traffic for longer than the window and baseline together, then errors."""
    rate = REQUEST_RATE.format(label="service", service=service, window="5s")
    await _above(prometheus, f"count_over_time(({rate})[60s:1s])", 50, "fifty seconds of normal traffic")
    flowing.errors_per_tick = 4
    spike = ERROR_RATE.format(label="service", service=service, window="5s")
    # A run asks whole seconds: let the spike last a few of them before the incident opens.
    await _above(prometheus, f"count_over_time(({spike} > 0.05)[10s:1s])", 3, "a few seconds of the error spike")


def _by_source(log: list[EventEnvelope], kind: str) -> dict[str, list[EventEnvelope]]:
    found: dict[str, list[EventEnvelope]] = defaultdict(list)
    for event in log:
        if event.type == kind:
            found[event.data.source].append(event)
    return found


async def test_an_opened_incident_is_correlated_with_its_error_spike(kafka, prometheus, exporter, tmp_path) -> None:
    settings, service = _settings(kafka, tmp_path), _service()
    async with traffic(exporter, service) as flowing, collected(settings) as events:
        await _error_spike_after_normal_traffic(prometheus, flowing, service)
        with worker(settings, prometheus.url, service) as log_path:
            incident = await open_incident(settings, service)
            log = await events.until_completed(incident, log_path)
            # On open, impact is assessed once: the spike burns the budget.
            await wait_for_async(lambda: any(e.type == "ImpactAssessed" for e in events.log_of(incident)),
                                 timeout=60, message="ImpactAssessed")
            impact = next(e for e in events.log_of(incident) if e.type == "ImpactAssessed")

    log = [e for e in log if e.type != "ImpactAssessed"]  # assessed concurrently with the run
    types = [e.type for e in log]
    assert types[:4] == ["IncidentOpened", "CorrelationStarted", "StatusChanged", "CorrelationSourceStarted"]
    started = log[1].data
    assert (started.run_id, started.trigger) == (opening_run_id(incident), "opened")
    moved = log[2].data
    assert (moved.from_, moved.to, log[2].actor.kind) == ("open", "investigating", "system")

    began, ended = _by_source(log, "CorrelationSourceStarted"), _by_source(log, "CorrelationSourceCompleted")
    assert set(began) == set(ended) == {"prometheus", "loki", "kubernetes"}
    assert all(len(v) == 1 for v in (*began.values(), *ended.values()))
    for source in ("prometheus", "loki", "kubernetes"):
        assert types.index("CorrelationSourceStarted") <= log.index(ended[source][0])
    outcome = {name: done[0].data for name, done in ended.items()}
    assert outcome["prometheus"].outcome == "succeeded"
    assert ERROR_RATE.format(label="service", service=service, window="5s") in outcome["prometheus"].queries
    assert outcome["loki"].outcome == outcome["kubernetes"].outcome == "unavailable"
    assert "not configured" in outcome["loki"].error and "not configured" in outcome["kubernetes"].error

    findings = [e.data for e in log if e.type == "FindingRecorded"]
    errors = [f for f in findings if f.signal == "errors"]
    assert errors and errors[0].source == "prometheus" and errors[0].service == service
    assert 0.05 < errors[0].evidence["anomaly"]["peak"] < 1 and errors[0].evidence["anomaly"]["typical"] == 0
    assert errors[0].evidence["query"] == ERROR_RATE.format(label="service", service=service, window="5s")
    completed = log[-1] if log[-1].type == "CorrelationCompleted" else next(e for e in log if e.type == "CorrelationCompleted")
    assert log.index(completed) > max(log.index(e) for e in log if e.type in ("FindingRecorded", "CorrelationSourceCompleted"))
    assert completed.data.outcome == "succeeded"
    [top, *_] = completed.data.hypotheses
    assert (top.rank, top.service, top.signal, top.path) == (1, service, "errors", [service])
    assert errors[0].finding_id in top.evidence
    assert impact.data.slo == "availability" and impact.data.burn_rate > 1


async def test_an_unreachable_prometheus_completes_failed_with_the_error(kafka, tmp_path) -> None:
    settings, service = _settings(kafka, tmp_path), _service()
    closed = f"http://127.0.0.1:{free_port()}"
    async with collected(settings) as events:
        with worker(settings, closed, service) as log_path:
            incident = await open_incident(settings, service)
            log = await events.until_completed(incident, log_path)

    ended = _by_source(log, "CorrelationSourceCompleted")
    assert all(len(v) == 1 for v in ended.values())
    failed = ended["prometheus"][0].data
    # Up to 3 attempts: the impact assessment on open shares the source's circuit breaker,
    # whose failures may open it during the run (5 consecutive failures).
    assert failed.outcome == "failed" and 1 <= failed.attempts <= 3, failed
    assert closed in failed.error and ("unreachable" in failed.error or "circuit" in failed.error), failed.error
    assert log[-1].type == "CorrelationCompleted" and log[-1].data.outcome == "failed"
