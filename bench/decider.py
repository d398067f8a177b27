"""Decider throughput: commands/s through one worker (SPEC §12, target >= 10,000/s).

Measured: the decider agent exactly as `streams.worker` installs it, alone in its Faust
worker (the worker's other agents are left out). Baselines, in the same run on the same
broker, over the same command records:
- raw_aiokafka: an aiokafka consume+produce loop forwarding every record (no decoding);
- naive_faust: a Faust agent taking one command at a time, deciding it with the same
  pure decider, awaiting each event's ack and writing the table per command;
- faust_passthrough: the same forwarding as raw_aiokafka as a Faust agent (batches,
  manual acks): what Faust's stream machinery alone costs.

Each system runs as its own process and starts on a backlog of N commands (a realistic
mix over N/20 incidents). Throughput is N over the span between the first and the last
record it produced (Kafka timestamps), so start-up and group joins are not counted; the
CPU it used over that span is reported too, per command, which the other processes on a
shared machine disturb far less than the wall clock.

    uv run python -m bench.decider --kafka apache --commands 20000

Prints one JSON object per line, the last one the row for `bench.report`.
"""

from __future__ import annotations

import asyncio
import signal
import sys
import uuid
from datetime import UTC, datetime
from pathlib import Path

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from bench.harness.broker import bench_settings, fresh_prefix, output_span, preload
from bench.harness.cli import parser_for, run
from bench.harness.measure import emit, emit_row
from bench.harness.stack import faust_streams, install_passthrough, role_process, run_faust, stop_process
from contracts.commands import (
    AcknowledgeIncident,
    AddNote,
    ChangeSeverity,
    ChangeStatus,
    CommandBase,
    OpenIncident,
)
from contracts.common import Actor
from foundation.settings import Settings, load_settings

SYSTEMS = ("raw_aiokafka", "faust_passthrough", "decider", "naive_faust")
BASELINES = {"raw_aiokafka": "raw aiokafka consume+produce loop", "naive_faust": "naive Faust table agent",
             "faust_passthrough": "Faust pass-through (forward only)"}
PER_INCIDENT = 20


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


async def measure(kafka: str, what: str, bootstrap: str, work: Path, records: list[tuple[bytes, bytes]],
                  timeout: float, profile: Path | None = None) -> dict:
    settings = bench_settings(bootstrap, fresh_prefix(what), work)
    await preload(settings, "commands", records)
    total = len(records)
    log = work / f"{what}.log"
    process = role_process("bench.decider", what, [], settings, log, profile)
    try:
        spent = await output_span(bootstrap, settings.topics.name("outcomes"), total, process.pid, timeout)
    except TimeoutError as err:
        raise RuntimeError(f"{what}: {err}\n{log.read_text()[-3000:]}") from None
    finally:
        stop_process(process)
    return {"bench": "decider", "kafka": kafka, "what": what, "commands": total, "span_s": round(spent["span_s"], 3),
            "commands_per_s": round(total / spent["span_s"], 1), "cpu_s": round(spent["cpu_s"], 2),
            "cpu_us_per_command": round(spent["cpu_s"] / total * 1e6, 1)}


def serve(role: str) -> None:
    """Run one system as its own process, settings from WARROOM_* (see `role_process`)."""
    settings = load_settings()
    if role == "raw_aiokafka":
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
        asyncio.run(raw_loop(settings))
        return
    from streams.decider import Rejected
    from streams.applied import Applied
    from streams.incident_log import execute
    from streams.worker import Poison, install_decider, outcome, parse, recorded_at

    streams, loop = faust_streams(settings)
    table = streams.incidents

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

    if role == "decider":
        install_decider(streams)  # alone: the worker's other agents are not measured here
    elif role == "faust_passthrough":
        install_passthrough(streams, settings.topics.name("commands"), settings.topics.name("outcomes"))
    else:
        streams.app.agent(streams.commands, name=role)(naive)
    run_faust(streams, loop)


async def main(args, found, work, load) -> None:
    records = workload(args.commands)
    results = {}
    for what in args.systems:
        results[what] = await measure(found.kafka, what, found.bootstrap, work, records, args.timeout, args.profile)
        emit(**results[what])
    if "decider" in results:
        emit_row("decider", load, {"throughput": results["decider"]["commands_per_s"]},
                 {BASELINES[w]: {"throughput": r["commands_per_s"]} for w, r in results.items() if w in BASELINES},
                 kafka=found.kafka, commands=len(records),
                 cpu_us_per_command={w: r["cpu_us_per_command"] for w, r in results.items()})


if __name__ == "__main__":
    if sys.argv[1:2] == ["--serve"]:
        serve(sys.argv[2])
        sys.exit(0)
    parser = parser_for(__doc__)
    parser.add_argument("--commands", type=int, default=20_000)
    parser.add_argument("--timeout", type=float, default=600)
    parser.add_argument("--profile", type=Path,
                        help="write a cProfile of each Faust worker's main thread to this directory")
    parser.add_argument("--systems", nargs="+", choices=SYSTEMS, default=list(SYSTEMS))
    run(main, parser.parse_args())
