"""Command → SSE latency at a fixed rate (SPEC §12: p50 ≤ 25 ms, p99 ≤ 100 ms at 1,000/s).

What is timed: from the moment a client issues `POST /v1/incidents/{id}/notes` to the
moment the matching `NoteAdded` message arrives on an open `/v1/stream` connection
(the whole path: gateway → commands topic → decider → events topic → projector →
PostgreSQL commit → NOTIFY → gateway fan-in → SSE). Also reported: the HTTP answer
(request → 201, which waits for the decider's outcome).

Baseline, in the same run on the same broker: a raw aiokafka produce → consume round
trip at the same rate (one producer, one consumer assigned to every partition).

Load is open-loop (`bench.harness.load`): a system that cannot keep up shows as
latency and as messages not delivered within the drain time, never as a lower rate.

    uv run python -m bench.command_to_sse --kafka apache --rate 1000 --seconds 5

Starts its own broker and PostgreSQL unless --kafka HOST:PORT / --postgres DSN are given,
and worker, projector and gateway as child processes. Prints one JSON object per line,
the last one the row for `bench.report`.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections import Counter

import aiohttp
import httpx

from bench.harness.broker import raw_roundtrip
from bench.harness.cli import parser_for, run
from bench.harness.load import add_notes
from bench.harness.measure import CpuMeter, emit, emit_row, percentiles
from bench.harness.stack import Stack, open_incidents, wait_ready
from foundation.topics import ensure_topics

RAW = "raw produce→consume round trip"
DRAIN_S = 15


async def outcome_wait(client: httpx.AsyncClient) -> dict[str, object]:
    """The gateway's own view (from /metrics): command produced → outcome heard, by bucket."""
    text = (await client.get("/metrics")).text
    buckets: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith('warroom_command_duration_seconds_bucket{') and 'type="AddNote"' in line:
            le = line.split('le="', 1)[1].split('"', 1)[0]
            buckets[le] = buckets.get(le, 0) + float(line.rsplit(" ", 1)[1])
    total = buckets.get("+Inf", 0)
    return {"AddNote_total": total,
            "share_within_s": {le: round(n / total, 3) for le, n in buckets.items() if total and le != "+Inf"}}


async def read_stream(session: aiohttp.ClientSession, url: str,
                      arrivals: dict[tuple[str, int], float], ready: asyncio.Event) -> None:
    async with session.get(url, timeout=aiohttp.ClientTimeout(total=None, sock_read=None)) as response:
        response.raise_for_status()
        ready.set()
        async for line in response.content:
            if line.startswith(b"data: "):
                now = time.perf_counter()
                payload = json.loads(line[6:])
                arrivals.setdefault((payload["incident_id"], payload["version"]), now)


async def main(args, found, work, load) -> None:
    with Stack(found.bootstrap, found.dsn, work, args.partitions) as stack:
        await ensure_topics(stack.settings)
        stack.start("worker", "projector", "gateway")
        headers = {"Authorization": f"Bearer {stack.token('responder')}"}
        async with httpx.AsyncClient(base_url=stack.base_url, timeout=30, headers=headers) as client, \
                aiohttp.ClientSession(headers=headers, timeout=aiohttp.ClientTimeout(total=60),
                                      connector=aiohttp.TCPConnector(limit=args.connections)) as session:
            await wait_ready(client, stack.check)
            incidents = await open_incidents(client, args.incidents, stack.check)

            baseline = await raw_roundtrip(found.bootstrap, f"{stack.settings.topics.prefix}.bench-roundtrip",
                                           args.partitions, args.rate, args.seconds)
            emit(bench="command_to_sse.baseline_raw_roundtrip", rate_per_s=args.rate, seconds=args.seconds,
                 kafka=found.kafka, **baseline)

            arrivals: dict[tuple[str, int], float] = {}
            subscribed = asyncio.Event()
            reader = asyncio.create_task(read_stream(session, f"{stack.base_url}/v1/stream", arrivals, subscribed))
            await asyncio.wait_for(subscribed.wait(), 30)
            cpu = CpuMeter(stack.pids | found.pids, {"bench_client": os.getpid()})
            sent = await add_notes(session, stack.base_url, incidents, args.rate, args.seconds)
            cores = cpu.cores()
            stack.check()

            keys = sent.versions
            deadline = time.monotonic() + DRAIN_S
            while any(key not in arrivals for key in keys.values()) and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            reader.cancel()
            await asyncio.gather(reader, return_exceptions=True)

            to_sse = [arrivals[key] - sent.sent[i] for i, key in keys.items() if key in arrivals]
            statuses = Counter(str(status) for _, status, _ in sent.answered.values())
            result = percentiles(to_sse)
            delivered = len(to_sse) / len(sent.sent) if sent.sent else 0.0
            emit(bench="command_to_sse", rate_per_s=args.rate, seconds=args.seconds, kafka=found.kafka,
                 partitions=args.partitions, incidents=args.incidents, commands=len(sent.sent),
                 http_statuses=dict(statuses), achieved_rate_per_s=sent.achieved_rate(args.rate),
                 scheduler_behind_ms_max=round(sent.behind_s_max * 1000, 2),
                 delivered=len(to_sse), missing=len(sent.sent) - len(to_sse), **result)
            emit(bench="command_to_sse.http_answer", **percentiles(sent.answer_latencies()))
            emit(bench="command_to_sse.cpu_cores_used_during_load", **cores)
            emit(bench="command_to_sse.gateway_outcome_wait", **await outcome_wait(client))
            emit_row("command_to_sse", load,
                     {"p50_ms": result["p50_ms"], "p99_ms": result["p99_ms"], "rate": sent.achieved_rate(args.rate),
                      "delivered": round(delivered, 4)},
                     {RAW: {"p50_ms": baseline["p50_ms"], "p99_ms": baseline["p99_ms"]}},
                     kafka=found.kafka, commands=len(sent.sent), seconds=args.seconds, partitions=args.partitions,
                     incidents=args.incidents, http_statuses=dict(statuses), drain_s=DRAIN_S, cpu_cores=cores)


if __name__ == "__main__":
    parser = parser_for(__doc__, postgres=True)
    parser.add_argument("--rate", type=float, default=1000, help="commands per second")
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--incidents", type=int, default=50, help="incidents the commands are spread over")
    parser.add_argument("--partitions", type=int, default=6)
    parser.add_argument("--connections", type=int, default=1000, help="HTTP connections of the load client")
    run(main, parser.parse_args(), postgres=True)
