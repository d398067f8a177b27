"""Alert intake throughput: alerts/s from the alerts topic to incidents opened and alerts
attached, through one worker (SPEC §12, target >= 5,000 alerts/s).

Baselines, in the same run on the same broker, over the same alert records:
- raw_consume: an aiokafka consumer reading every alert record and nothing else;
- faust_passthrough: a Faust agent forwarding every alert record unchanged to the commands
  topic (batches, manual acks): what one Faust hop costs before any intake work.

Systems under test, each one worker process:
- intake: the worker's real topology, intake agents and decider: alerts/s from the topic
  to incidents opened and alerts attached or resolved (events on the log);
- intake_only: the intake agents alone: alerts/s from the topic to commands.

Each system runs as its own process and starts on a backlog of N alerts: N/20 services,
each with 16 distinct firing alerts, 2 of them firing again (no-ops) and 2 resolving,
interleaved as they would arrive. Records are keyed by service, as the README asks of
producers (`--key fingerprint` keys them otherwise, so each takes one more hop).

Throughput is N over the span from the first record the system produced (a command or a
notice; for the baseline, the first alert it read) to its last output (event, command; the last alert
read), so start-up and group joins are not counted; the CPU the process used over that
span is reported too, per alert.

    uv run python bench/intake.py --kafka tansu|apache --alerts 20000

Prints one JSON object per line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from contracts.alerts import Alert  # noqa: E402
from streams.intake import fingerprint  # noqa: E402
from warroom.settings import Settings  # noqa: E402
from warroom.topics import ensure_topics  # noqa: E402

TARGET = 5_000
PER_SERVICE = 20
DISTINCT, REPEATS, RESOLVES = 16, 2, 2
EVENTS_PER_SERVICE = 1 + DISTINCT + RESOLVES  # opened, attached, resolved; repeats add nothing
SYSTEMS = ("raw_consume", "faust_passthrough", "intake_only", "intake")


def emit(**fields: object) -> None:
    print(json.dumps(fields), flush=True)


def workload(total: int, key: str = "service") -> list[tuple[bytes, bytes]]:
    """`total` alert records (a multiple of 20), keyed by `key`, services interleaved."""
    now = datetime.now(UTC)
    services = [f"svc-{n:05d}" for n in range(max(1, total // PER_SERVICE))]

    def life(service: str) -> list[Alert]:
        def firing(n: int) -> Alert:
            return Alert(status="firing", labels={"alertname": f"Alert{n % 4}", "service": service,
                                                  "pod": f"{service}-{n}", "severity": "warning"},
                         annotations={"summary": f"alert {n} of {service}"},
                         starts_at=now - timedelta(minutes=5), source="bench")
        alerts = [firing(n) for n in range(DISTINCT)]
        alerts += [firing(n).model_copy(update={"starts_at": now}) for n in range(REPEATS)]
        alerts += [firing(DISTINCT - 1 - n).model_copy(update={"status": "resolved", "ends_at": now})
                   for n in range(RESOLVES)]
        return alerts

    lives = [life(s) for s in services]
    def key_of(alert: Alert) -> bytes:
        return (alert.labels["service"] if key == "service" else fingerprint(alert)).encode()

    records = [(key_of(lived[step]), lived[step].model_dump_json().encode())
               for step in range(PER_SERVICE) for lived in lives]
    return records[:total]


def settings_for(bootstrap: str, prefix: str, data_dir: Path) -> Settings:
    return Settings(kafka={"bootstrap": bootstrap}, topics={"prefix": prefix},
                    data_dir=data_dir / prefix, log_level="warning")


async def preload(settings: Settings, records: list[tuple[bytes, bytes]]) -> None:
    await ensure_topics(settings)
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka.bootstrap, linger_ms=5,
                                max_batch_size=512 * 1024)
    await producer.start()
    try:
        topic = settings.topics.name("alerts")
        acks = [await producer.send(topic, value, key=key) for key, value in records]
        await asyncio.gather(*acks)
    finally:
        await producer.stop()


def cpu_seconds(pid: int) -> float:
    """User + system CPU time the process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def output_span(settings: Settings, target: str, expected: int, timeout: float, pid: int) -> dict:
    """Wait until `expected` records are on the `target` topic ("commands" or "events"):
    the span from the first record the worker produced (a command, or a notice for an alert
    keyed otherwise) to the last target record (Kafka timestamps), and the CPU the worker
    used meanwhile."""
    commands, sink = settings.topics.name("commands"), settings.topics.name(target)
    notices = f"{settings.topics.prefix}-streams-intake-notices"
    consumer = AIOKafkaConsumer(*{commands, notices, sink}, bootstrap_servers=settings.kafka.bootstrap,
                                auto_offset_reset="earliest", enable_auto_commit=False,
                                metadata_max_age_ms=500)
    await consumer.start()
    first = last = cpu_at_first = None
    seen = 0
    deadline = time.monotonic() + timeout
    try:
        while seen < expected:
            if time.monotonic() > deadline:
                raise TimeoutError(f"only {seen} of {expected} records on {sink}")
            for tp, records in (await consumer.getmany(timeout_ms=200, max_records=10_000)).items():
                if cpu_at_first is None and records:
                    cpu_at_first = cpu_seconds(pid)
                for record in records:
                    if tp.topic in (commands, notices):
                        first = record.timestamp if first is None else min(first, record.timestamp)
                    if tp.topic == sink:
                        seen += 1
                        last = record.timestamp if last is None else max(last, record.timestamp)
        cpu = cpu_seconds(pid) - cpu_at_first
    finally:
        await consumer.stop()
    return {"records": seen, "span_s": (last - first) / 1000, "cpu_s": cpu}


async def raw_consume(settings: Settings, total: int, result: Path) -> None:
    """Read `total` alert records as one aiokafka consumer group member; write the span."""
    consumer = AIOKafkaConsumer(settings.topics.name("alerts"),
                                bootstrap_servers=settings.kafka.bootstrap,
                                group_id=f"{settings.topics.prefix}-raw",
                                auto_offset_reset="earliest")
    await consumer.start()
    seen, first, cpu_first = 0, None, 0.0
    try:
        while seen < total:
            batch = await consumer.getmany(timeout_ms=100, max_records=1000)
            count = sum(len(records) for records in batch.values())
            if count and first is None:
                first, cpu_first = time.perf_counter(), time.process_time()
            seen += count
            if count:
                await consumer.commit()
        span, cpu = time.perf_counter() - first, time.process_time() - cpu_first
    finally:
        await consumer.stop()
    result.write_text(json.dumps({"span_s": span, "cpu_s": cpu}))


def start(settings: Settings, role: str, total: int, log: Path, result: Path,
          profile: Path | None) -> subprocess.Popen:
    env = {**os.environ,
           "WARROOM_KAFKA__BOOTSTRAP": settings.kafka.bootstrap,
           "WARROOM_TOPICS__PREFIX": settings.topics.prefix,
           "WARROOM_DATA_DIR": str(settings.data_dir),
           "WARROOM_LOG_LEVEL": "warning"}
    target = [str(Path(__file__).resolve()), "--serve", role, str(total), str(result)]
    profiling = ["-m", "cProfile", "-o", str(profile / f"{role}.prof")] if profile else []
    return subprocess.Popen([sys.executable, *profiling, *target], cwd=ROOT, env=env,
                            stdout=log.open("wb"), stderr=subprocess.STDOUT)


async def measure(kind: str, what: str, bootstrap: str, data_dir: Path,
                  records: list[tuple[bytes, bytes]], timeout: float,
                  profile: Path | None = None) -> dict:
    settings = settings_for(bootstrap, f"bench-{what}-{uuid.uuid4().hex[:6]}", data_dir)
    await preload(settings, records)
    total = len(records)
    log, result = data_dir / f"{what}.log", data_dir / f"{what}.json"
    process = start(settings, what, total, log, result, profile)
    try:
        if what == "faust_passthrough":
            spent = await output_span(settings, "commands", total, timeout, process.pid)
        elif what in ("intake", "intake_only"):
            # One command, and one event, per opening, attach and resolution.
            spent = await output_span(settings, "events" if what == "intake" else "commands",
                                      total // PER_SERVICE * EVENTS_PER_SERVICE, timeout, process.pid)
        else:
            await asyncio.wait_for(asyncio.to_thread(process.wait), timeout)
            spent = json.loads(result.read_text())
    except (TimeoutError, FileNotFoundError) as err:
        raise RuntimeError(f"{what}: {err}\n{log.read_text()[-3000:]}") from None
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=60)
    span = max(spent["span_s"], 0.001)
    return {"bench": "intake", "kafka": kind, "what": what, "alerts": total,
            "span_s": round(span, 3), "alerts_per_s": round(total / span, 1),
            "cpu_s": round(spent["cpu_s"], 2), "cpu_us_per_alert": round(spent["cpu_s"] / total * 1e6, 1)}


def serve(role: str, total: int, result: Path) -> None:
    """Run one system as its own process, settings from WARROOM_* (see `start`)."""
    from warroom.settings import load_settings

    settings = load_settings()
    if role == "raw_consume":
        asyncio.run(raw_consume(settings, total, result))
        return
    import faust

    from streams.app import create_app
    from streams.intake_agents import install_intake
    from streams.worker import install_decider

    (settings.data_dir / "faust").mkdir(parents=True, exist_ok=True)
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    streams = create_app(settings)
    if role == "faust_passthrough":
        alerts = streams.app.topic(settings.topics.name("alerts"), key_type=bytes, value_type=bytes,
                                   key_serializer="raw", value_serializer="raw")
        sink = settings.topics.name("commands")

        @streams.app.agent(alerts, name="passthrough")
        async def passthrough(stream) -> None:
            """Faust's own cost: alert records forwarded unchanged in batches, nothing decoded."""
            producer = await streams.app.maybe_start_producer()
            async for batch in stream.noack_take(1000, within=0.01):
                acks = [await producer.send(sink, e.message.key, e.message.value, None, None, None)
                        for e in batch]
                await asyncio.gather(*acks)
                for e in batch:
                    await stream.ack(e)
    else:
        if role == "intake":
            install_decider(streams)
        install_intake(streams)
    worker = faust.Worker(streams.app, loop=loop, loglevel="WARNING")
    worker.spinner = None  # as streams.worker.run does: no DEBUG root logger
    worker.execute_from_commandline()


def start_broker(kind: str, data_dir: Path):
    from warroom.servers import default_cache_dir, ensure_kafka_jars, start_apache_kafka, start_tansu

    if kind == "tansu":
        return start_tansu(data_dir / "tansu")
    return start_apache_kafka(data_dir / "kafka", jars_dir=ensure_kafka_jars(default_cache_dir()))


async def main(args: argparse.Namespace) -> None:
    total = max(PER_SERVICE, args.alerts // PER_SERVICE * PER_SERVICE)
    records = workload(total, args.key)
    with tempfile.TemporaryDirectory(prefix="bench-intake-") as tmp:
        data_dir = Path(args.data_dir or tmp)
        data_dir.mkdir(parents=True, exist_ok=True)
        broker = start_broker(args.kafka, data_dir)
        try:
            results = {}
            for what in args.systems:
                results[what] = await measure(args.kafka, what, broker.bootstrap, data_dir,
                                              records, args.timeout, args.profile)
                emit(**results[what], key=args.key)
            baselines = {w: r for w, r in results.items() if w in ("raw_consume", "faust_passthrough")}
            for ours in (r for w, r in results.items() if w not in baselines):
                rate = ours["alerts_per_s"]
                emit(bench="intake", kafka=args.kafka, what=f"summary_{ours['what']}", alerts=total,
                     key=args.key, alerts_per_s=rate, target=TARGET, meets_target=rate >= TARGET,
                     **{f"ratio_to_{w}": round(rate / r["alerts_per_s"], 4) for w, r in baselines.items()},
                     **{f"cpu_ratio_to_{w}": round(ours["cpu_us_per_alert"] / max(r["cpu_us_per_alert"], 0.1), 1)
                        for w, r in baselines.items()})
        finally:
            broker.stop()


if __name__ == "__main__":
    if sys.argv[1:2] == ["--serve"]:
        serve(sys.argv[2], int(sys.argv[3]), Path(sys.argv[4]))
        sys.exit(0)
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kafka", choices=["tansu", "apache"], default="tansu")
    parser.add_argument("--alerts", type=int, default=20_000)
    parser.add_argument("--key", choices=["service", "fingerprint"], default="service",
                        help="how the alert records are keyed")
    parser.add_argument("--timeout", type=float, default=600)
    parser.add_argument("--data-dir", help="keep broker data and worker logs here")
    parser.add_argument("--profile", type=Path,
                        help="write a cProfile of the worker's main thread to this directory")
    parser.add_argument("--systems", nargs="+", choices=SYSTEMS, default=list(SYSTEMS))
    asyncio.run(main(parser.parse_args()))
