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

    uv run python -m bench.intake --kafka apache --alerts 20000

Prints one JSON object per line, the last one the row for `bench.report` (whole worker
against raw consume).
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from aiokafka import AIOKafkaConsumer

from bench.harness.broker import bench_settings, fresh_prefix, output_span, preload
from bench.harness.cli import parser_for, run
from bench.harness.measure import emit, emit_row
from bench.harness.stack import faust_streams, install_passthrough, role_process, run_faust, stop_process
from contracts.alerts import Alert
from streams.alert_reading import fingerprint
from foundation.settings import Settings, load_settings

PER_SERVICE = 20
DISTINCT, REPEATS, RESOLVES = 16, 2, 2
EVENTS_PER_SERVICE = 1 + DISTINCT + RESOLVES  # opened, attached, resolved; repeats add nothing
SYSTEMS = ("raw_consume", "faust_passthrough", "intake_only", "intake")
BASELINES = {"raw_consume": "raw consume", "faust_passthrough": "Faust pass-through (forward only)"}


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


async def measure(kafka: str, what: str, bootstrap: str, work: Path, records: list[tuple[bytes, bytes]],
                  timeout: float, profile: Path | None = None) -> dict:
    settings = bench_settings(bootstrap, fresh_prefix(what), work)
    await preload(settings, "alerts", records)
    total = len(records)
    log, result = work / f"{what}.log", work / f"{what}.json"
    process = role_process("bench.intake", what, [str(total), str(result)], settings, log, profile)
    name = settings.topics.name
    # The worker's first output: a command, or a notice for an alert keyed otherwise.
    starts = (name("commands"), f"{settings.topics.prefix}-streams-intake-notices")
    try:
        if what == "faust_passthrough":
            spent = await output_span(bootstrap, name("commands"), total, process.pid, timeout)
        elif what in ("intake", "intake_only"):
            # One command, and one event, per opening, attach and resolution.
            spent = await output_span(bootstrap, name("events" if what == "intake" else "commands"),
                                      total // PER_SERVICE * EVENTS_PER_SERVICE, process.pid, timeout, starts)
        else:
            await asyncio.wait_for(asyncio.to_thread(process.wait), timeout)
            spent = json.loads(result.read_text())
    except (TimeoutError, FileNotFoundError) as err:
        raise RuntimeError(f"{what}: {err}\n{log.read_text()[-3000:]}") from None
    finally:
        stop_process(process)
    span = max(spent["span_s"], 0.001)
    return {"bench": "intake", "kafka": kafka, "what": what, "alerts": total,
            "span_s": round(span, 3), "alerts_per_s": round(total / span, 1),
            "cpu_s": round(spent["cpu_s"], 2), "cpu_us_per_alert": round(spent["cpu_s"] / total * 1e6, 1)}


def serve(role: str, total: int, result: Path) -> None:
    """Run one system as its own process, settings from WARROOM_* (see `role_process`)."""
    settings = load_settings()
    if role == "raw_consume":
        asyncio.run(raw_consume(settings, total, result))
        return
    from streams.intake_agents import install_intake
    from streams.worker import install_decider

    streams, loop = faust_streams(settings)
    if role == "faust_passthrough":
        install_passthrough(streams, settings.topics.name("alerts"), settings.topics.name("commands"))
    else:
        if role == "intake":
            install_decider(streams)
        install_intake(streams)
    run_faust(streams, loop)


async def main(args, found, work, load) -> None:
    total = max(PER_SERVICE, args.alerts // PER_SERVICE * PER_SERVICE)
    records = workload(total, args.key)
    results = {}
    for what in args.systems:
        results[what] = await measure(found.kafka, what, found.bootstrap, work, records, args.timeout, args.profile)
        emit(**results[what], key=args.key)
    if "intake" in results:
        emit_row("intake", load, {"throughput": results["intake"]["alerts_per_s"]},
                 {BASELINES[w]: {"throughput": r["alerts_per_s"]} for w, r in results.items() if w in BASELINES},
                 kafka=found.kafka, alerts=total, key=args.key,
                 intake_agents_alone_alerts_per_s=results.get("intake_only", {}).get("alerts_per_s"),
                 cpu_us_per_alert={w: r["cpu_us_per_alert"] for w, r in results.items()})


if __name__ == "__main__":
    if sys.argv[1:2] == ["--serve"]:
        serve(sys.argv[2], int(sys.argv[3]), Path(sys.argv[4]))
        sys.exit(0)
    parser = parser_for(__doc__)
    parser.add_argument("--alerts", type=int, default=20_000)
    parser.add_argument("--key", choices=["service", "fingerprint"], default="service",
                        help="how the alert records are keyed")
    parser.add_argument("--timeout", type=float, default=600)
    parser.add_argument("--profile", type=Path,
                        help="write a cProfile of the worker's main thread to this directory")
    parser.add_argument("--systems", nargs="+", choices=SYSTEMS, default=list(SYSTEMS))
    run(main, parser.parse_args())
