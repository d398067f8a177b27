"""Decider throughput: commands/s through one worker (SPEC §12, target >= 10,000/s).

Measured: the decider agent exactly as `streams.worker` installs it, alone in its Faust
worker (the worker's other agents are left out). Baselines, in the same run on the same
broker, over the same command records:
- raw_aiokafka: an aiokafka consume+produce loop forwarding every record (no decoding);
- faust_passthrough: the same forwarding as a Faust agent (batches, manual acks): what
  Faust's stream machinery alone costs;
- naive_faust: a Faust agent taking one command at a time, deciding it with the same
  pure decider, awaiting each event's ack and writing the table per command.

Each system runs as its own process and starts on a backlog of N commands (a realistic
mix over N/20 incidents). Throughput is N over the span between the first and the last
record it produced (Kafka timestamps), so start-up and group joins are not counted; the
CPU it used over that span is reported too, per command, which the other processes on a
shared machine disturb far less than the wall clock.

    uv run python bench/decider.py --kafka tansu|apache --commands 20000

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
from datetime import UTC, datetime
from pathlib import Path

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from contracts.commands import (  # noqa: E402
    AcknowledgeIncident,
    AddNote,
    ChangeSeverity,
    ChangeStatus,
    CommandBase,
    OpenIncident,
)
from contracts.common import Actor  # noqa: E402
from warroom.settings import Settings  # noqa: E402
from warroom.topics import ensure_topics  # noqa: E402

TARGET = 10_000
SYSTEMS = ["raw_aiokafka", "faust_passthrough", "decider", "naive_faust"]
PER_INCIDENT = 20


def emit(**fields: object) -> None:
    print(json.dumps(fields), flush=True)


def workload(total: int) -> list[tuple[bytes, bytes]]:
    """`total` command records, incidents interleaved as they would arrive."""
    alice = Actor(kind="user", id="alice")
    now = datetime.now(UTC)
    incidents = [uuid.uuid4() for _ in range(max(1, total // PER_INCIDENT))]

    def lifecycle(incident: uuid.UUID) -> list[CommandBase]:
        def make(kind: type[CommandBase], **fields) -> CommandBase:
            return kind(command_id=uuid.uuid4(), incident_id=incident, actor=alice,
                        issued_at=now, **fields)
        steps = [
            make(OpenIncident, title="checkout 5xx", service="checkout", severity="high",
                 labels={"team": "payments"}),
            make(AcknowledgeIncident),
            make(ChangeStatus, to="investigating", expected_version=2),
            make(ChangeSeverity, severity="critical", reason="revenue impact"),
            make(ChangeStatus, to="open"),  # rejected: invalid_transition
        ]
        steps += [make(AddNote, note_id=uuid.uuid4(), text=f"update {n}: still looking")
                  for n in range(PER_INCIDENT - len(steps) - 2)]
        steps += [make(ChangeStatus, to="mitigated"),
                  make(ChangeStatus, to="resolved", reason="rolled back")]
        return steps

    lives = [lifecycle(i) for i in incidents]
    records = []
    for step in range(PER_INCIDENT):
        for incident, life in zip(incidents, lives):
            records.append((str(incident).encode(), life[step].model_dump_json().encode()))
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
        topic = settings.topics.name("commands")
        acks = [await producer.send(topic, value, key=key) for key, value in records]
        await asyncio.gather(*acks)
    finally:
        await producer.stop()


def cpu_seconds(pid: int) -> float:
    """User + system CPU time the process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def output_span(settings: Settings, topic: str, total: int, timeout: float,
                      pid: int) -> dict:
    """Wait until `total` records are on `topic`: their timestamp span, and the CPU the
    system under test (`pid`) used from the first record to the last."""
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=settings.kafka.bootstrap,
                                auto_offset_reset="earliest", enable_auto_commit=False,
                                metadata_max_age_ms=1000)
    await consumer.start()
    first = last = None
    cpu_at_first = None
    seen = 0
    deadline = time.monotonic() + timeout
    try:
        while seen < total:
            if time.monotonic() > deadline:
                raise TimeoutError(f"only {seen} of {total} records on {topic}")
            for records in (await consumer.getmany(timeout_ms=200, max_records=10_000)).values():
                if cpu_at_first is None and records:
                    cpu_at_first = cpu_seconds(pid)
                for record in records:
                    seen += 1
                    first = record.timestamp if first is None else min(first, record.timestamp)
                    last = record.timestamp if last is None else max(last, record.timestamp)
        cpu = cpu_seconds(pid) - cpu_at_first
    finally:
        await consumer.stop()
    span = max((last - first) / 1000, 0.001)
    return {"records": seen, "span_s": round(span, 3), "commands_per_s": round(total / span, 1),
            "cpu_s": round(cpu, 2), "cpu_us_per_command": round(cpu / total * 1e6, 1)}


async def raw_loop(settings: Settings) -> None:
    """Consume every command and produce it unchanged to the outcomes topic, forever."""
    consumer = AIOKafkaConsumer(settings.topics.name("commands"),
                                bootstrap_servers=settings.kafka.bootstrap,
                                group_id=f"{settings.topics.prefix}-raw",
                                auto_offset_reset="earliest")
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka.bootstrap)
    await consumer.start()
    await producer.start()
    sink = settings.topics.name("outcomes")
    try:
        while True:
            batch = await consumer.getmany(timeout_ms=100, max_records=1000)
            acks = [await producer.send(sink, r.value, key=r.key, partition=r.partition)
                    for records in batch.values() for r in records]
            if acks:
                await asyncio.gather(*acks)
                await consumer.commit()
    finally:
        await producer.stop()
        await consumer.stop()


def start_worker(settings: Settings, role: str, log: Path, profile: Path | None) -> subprocess.Popen:
    env = {**os.environ,
           "WARROOM_KAFKA__BOOTSTRAP": settings.kafka.bootstrap,
           "WARROOM_TOPICS__PREFIX": settings.topics.prefix,
           "WARROOM_DATA_DIR": str(settings.data_dir),
           "WARROOM_LOG_LEVEL": "warning"}
    target = [str(Path(__file__).resolve()), "--serve", role]
    profiling = ["-m", "cProfile", "-o", str(profile / f"{role}.prof")] if profile else []
    return subprocess.Popen([sys.executable, *profiling, *target], cwd=ROOT, env=env,
                            stdout=log.open("wb"), stderr=subprocess.STDOUT)


async def measure(kind: str, what: str, bootstrap: str, data_dir: Path,
                  records: list[tuple[bytes, bytes]], timeout: float,
                  profile: Path | None = None) -> dict:
    settings = settings_for(bootstrap, f"bench-{what}-{uuid.uuid4().hex[:6]}", data_dir)
    await preload(settings, records)
    total = len(records)
    outcomes = settings.topics.name("outcomes")
    log = data_dir / f"{what}.log"
    process = start_worker(settings, what, log, profile)
    try:
        result = await output_span(settings, outcomes, total, timeout, process.pid)
    except TimeoutError as err:
        raise RuntimeError(f"{what}: {err}\n{log.read_text()[-3000:]}") from None
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=60)
    return {"bench": "decider", "kafka": kind, "what": what, "commands": total, **result}


def serve(role: str) -> None:
    """Run one baseline as its own process, settings from WARROOM_* (see `start_worker`)."""
    from warroom.settings import load_settings

    settings = load_settings()
    if role == "raw_aiokafka":
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
        asyncio.run(raw_loop(settings))
        return
    import faust

    from streams.app import create_app
    from streams.decider import Rejected
    from streams.incident import Applied
    from streams.incident_log import execute
    from streams.worker import Poison, install_decider, outcome, parse, recorded_at

    (settings.data_dir / "faust").mkdir(parents=True, exist_ok=True)
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    streams = create_app(settings)
    table = streams.incidents
    sink = settings.topics.name("outcomes")

    async def naive(stream) -> None:
        """One command at a time: decide, await each event's ack, write the table."""
        async for event in stream.events():
            message = event.message
            try:
                command = parse(message.key, message.value)
            except Poison:
                continue
            key = str(command.incident_id)
            before = (table.get(key) or Applied()).state
            try:
                decision = execute(command, before, recorded_at(message, command))
            except Rejected as rejection:
                answer, after = outcome(command, before, before, 0, rejection), before
            else:
                for fact in decision.events:
                    await (await streams.events.send(key=message.key, value=fact))
                answer = outcome(command, before, decision.state, len(decision.events))
                after = decision.state
            table[key] = Applied(state=after, through_offset=message.offset)
            await streams.outcomes.send(key=message.key, value=answer)

    async def passthrough(stream) -> None:
        """Faust's own cost: batches of records forwarded unchanged, nothing decided."""
        producer = await streams.app.maybe_start_producer()
        async for batch in stream.noack_take(1000, within=0.002):
            acks = [await producer.send(sink, e.message.key, e.message.value,
                                        e.message.partition, None, None) for e in batch]
            await asyncio.gather(*acks)
            for e in batch:
                await stream.ack(e)

    if role == "decider":
        install_decider(streams)  # alone: the worker's other agents are not measured here
    else:
        streams.app.agent(streams.commands, name=role)(
            passthrough if role == "faust_passthrough" else naive)
    worker = faust.Worker(streams.app, loop=loop, loglevel="WARNING")
    worker.spinner = None  # as streams.worker.run does: no DEBUG root logger
    worker.execute_from_commandline()


def start_broker(kind: str, data_dir: Path):
    from warroom.servers import default_cache_dir, ensure_kafka_jars, start_apache_kafka, start_tansu

    if kind == "tansu":
        return start_tansu(data_dir / "tansu")
    return start_apache_kafka(data_dir / "kafka", jars_dir=ensure_kafka_jars(default_cache_dir()))


async def main(args: argparse.Namespace) -> None:
    records = workload(args.commands)
    with tempfile.TemporaryDirectory(prefix="bench-decider-") as tmp:
        data_dir = Path(args.data_dir or tmp)
        data_dir.mkdir(parents=True, exist_ok=True)
        broker = start_broker(args.kafka, data_dir)
        try:
            results = {}
            for what in args.systems:
                results[what] = await measure(args.kafka, what, broker.bootstrap, data_dir,
                                              records, args.timeout, args.profile)
                emit(**results[what])
            if "decider" in results:
                ours = results["decider"]
                rate = ours["commands_per_s"]
                emit(bench="decider", kafka=args.kafka, what="summary", commands=args.commands,
                     decider_commands_per_s=rate, target=TARGET, meets_target=rate >= TARGET,
                     **{f"ratio_to_{w}": round(rate / r["commands_per_s"], 3)
                        for w, r in results.items() if w != "decider"},
                     **{f"cpu_ratio_to_{w}": round(ours["cpu_us_per_command"]
                                                   / max(r["cpu_us_per_command"], 0.1), 2)
                        for w, r in results.items() if w != "decider"})
        finally:
            broker.stop()


if __name__ == "__main__":
    if sys.argv[1:2] == ["--serve"]:
        serve(sys.argv[2])
        sys.exit(0)
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kafka", choices=["tansu", "apache"], default="tansu")
    parser.add_argument("--commands", type=int, default=20_000)
    parser.add_argument("--timeout", type=float, default=600)
    parser.add_argument("--data-dir", help="keep broker data and worker logs here")
    parser.add_argument("--profile", type=Path,
                        help="write a cProfile of each Faust worker's main thread to this directory")
    parser.add_argument("--systems", nargs="+", choices=SYSTEMS,
                        default=["raw_aiokafka", "faust_passthrough", "decider", "naive_faust"])
    asyncio.run(main(parser.parse_args()))
