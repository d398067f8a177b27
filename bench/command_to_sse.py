"""Command → SSE latency at a fixed rate (SPEC §12: p50 ≤ 25 ms, p99 ≤ 100 ms at 1,000/s).

What is timed: from the moment a client issues `POST /v1/incidents/{id}/notes` to the
moment the matching `NoteAdded` message arrives on an open `/v1/stream` connection
(the whole path: gateway → commands topic → decider → events topic → projector →
PostgreSQL commit → NOTIFY → gateway fan-in → SSE). Also reported: the HTTP answer
(request → 201, which waits for the decider's outcome).

Baseline, in the same run on the same broker: a raw aiokafka produce → consume round
trip at the same rate (one producer, one consumer assigned to every partition).

Load is open-loop: request i is issued at t0 + i/rate whether or not earlier ones have
been answered, so a slow system shows up as latency, not as a lower rate.

    uv run python bench/command_to_sse.py --rate 200 --seconds 20
    uv run python bench/command_to_sse.py --kafka apache --rate 1000 --seconds 20

Starts its own broker (Tansu by default) and PostgreSQL unless --kafka HOST:PORT /
--postgres DSN are given, and worker, projector and gateway as child processes.
Prints one JSON object per line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path

import aiohttp
import httpx
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gateway.auth import mint_token  # noqa: E402
from warroom.servers import free_port  # noqa: E402
from warroom.servers.process import Server, log_tail, spawn  # noqa: E402
from warroom.settings import Settings, load_settings  # noqa: E402
from warroom.topics import ensure_topics  # noqa: E402

TARGET = {"rate_per_s": 1000, "p50_ms": 25, "p99_ms": 100}
SECRET = "bench-secret-" + "z" * 32


def emit(**fields: object) -> None:
    print(json.dumps(fields), flush=True)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process and its reaped children so far (Linux /proc)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            fields = fh.read().rsplit(b")", 1)[1].split()
    except OSError:
        return 0.0
    return sum(int(v) for v in fields[11:15]) / os.sysconf("SC_CLK_TCK")


def percentiles(samples_s: list[float]) -> dict[str, float | int | None]:
    if not samples_s:
        return {"count": 0, "p50_ms": None, "p90_ms": None, "p99_ms": None, "max_ms": None}
    ordered = sorted(samples_s)

    def at(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000, 2)

    return {"count": len(ordered), "p50_ms": at(0.50), "p90_ms": at(0.90), "p99_ms": at(0.99),
            "max_ms": round(ordered[-1] * 1000, 2), "mean_ms": round(statistics.fmean(ordered) * 1000, 2)}


# -- the stack -----------------------------------------------------------------------


class Stack:
    def __init__(self, settings: Settings, env: dict[str, str], work: Path) -> None:
        self.settings, self.env, self.work = settings, env, work
        self.servers: list[Server] = []
        self.base_url = f"http://127.0.0.1:{env['WARROOM_GATEWAY__PORT']}"

    def start(self, what: str) -> None:
        log = self.work / f"{what}.log"
        process = spawn(what, [sys.executable, "-m", "warroom", what], log, env=self.env, cwd=ROOT)
        self.servers.append(Server(name=what, process=process, host="127.0.0.1", port=0,
                                   data_dir=self.work, log_path=log))

    def check(self) -> None:
        for server in self.servers:
            if not server.alive():
                raise RuntimeError(f"{server.name} exited:\n{log_tail(server.log_path)}")

    def stop(self) -> None:
        for server in reversed(self.servers):
            server.stop(timeout=10)


def make_stack(bootstrap: str, dsn: str, partitions: int, work: Path) -> Stack:
    tag = uuid.uuid4().hex[:8]
    prefix, schema, port = f"bench{tag}", f"bench_{tag}", free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("WARROOM_")}
    env.update({
        "PYTHONUNBUFFERED": "1", "WARROOM_LOG_LEVEL": "warning",
        "WARROOM_KAFKA__BOOTSTRAP": bootstrap, "WARROOM_POSTGRES__DSN": dsn,
        "WARROOM_POSTGRES__SCHEMA_NAME": schema, "WARROOM_TOPICS__PREFIX": prefix,
        "WARROOM_TOPICS__PARTITIONS": str(partitions), "WARROOM_JWT_SECRET": SECRET,
        "WARROOM_DATA_DIR": str(work), "WARROOM_GATEWAY__PORT": str(port),
        "WARROOM_WORKER__WEB_PORT": str(free_port()), "WARROOM_PROJECTOR__GROUP_ID": f"{prefix}-projector",
        # Only the command path is measured: no correlation sources to call.
        "WARROOM_CORRELATION__SOURCES": "[]",
    })
    settings = load_settings(kafka={"bootstrap": bootstrap}, postgres={"dsn": dsn, "schema_name": schema},
                             topics={"prefix": prefix, "partitions": partitions}, auth={"jwt_secret": SECRET})
    return Stack(settings, env, work)


async def wait_ready(stack: Stack, client: httpx.AsyncClient, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while True:
        stack.check()
        try:
            if (await client.get("/readyz")).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError("gateway not ready in time")
        await asyncio.sleep(0.2)


async def open_incidents(client: httpx.AsyncClient, count: int, stack: Stack) -> list[str]:
    """`count` incidents, accepted and visible in the read model (so every process is warm)."""
    ids = []
    deadline = time.monotonic() + 120
    while len(ids) < count:
        stack.check()
        response = await client.post("/v1/incidents", headers={"Idempotency-Key": f"bench-{len(ids)}"},
                                     json={"title": f"bench {len(ids)}", "service": "bench", "severity": "low"})
        if response.status_code == 201:
            ids.append(response.json()["id"])
        elif time.monotonic() > deadline:
            raise RuntimeError(f"cannot open incidents: {response.status_code} {response.text}")
    for incident in ids:
        await client.get(f"/v1/incidents/{incident}", params={"min_version": 1})
    return ids


# -- measurements ----------------------------------------------------------------------


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


async def command_load(session: aiohttp.ClientSession, base_url: str, incidents: list[str],
                       rate: float, seconds: float) -> dict:
    total = int(rate * seconds)
    sent: dict[int, float] = {}
    answered: dict[int, tuple[float, int, tuple[str, int] | None]] = {}
    behind: list[float] = []

    async def one(i: int) -> None:
        incident = incidents[i % len(incidents)]
        sent[i] = time.perf_counter()
        try:
            async with session.post(f"{base_url}/v1/incidents/{incident}/notes",
                                    json={"text": f"bench note {i}"}) as response:
                body = await response.json(content_type=None)
                status = response.status
        except (aiohttp.ClientError, TimeoutError) as err:
            answered[i] = (time.perf_counter(), 599, None)
            print(f"request {i}: {err!r}", file=sys.stderr)
            return
        key = (incident, body["version"]) if status == 201 else None
        answered[i] = (time.perf_counter(), status, key)

    tasks = []
    t0 = time.perf_counter()
    for i in range(total):
        due = t0 + i / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        else:
            behind.append(-delay)
        tasks.append(asyncio.create_task(one(i)))
    await asyncio.gather(*tasks)
    elapsed = time.perf_counter() - t0
    return {"sent": sent, "answered": answered, "elapsed": elapsed,
            "scheduler_behind_ms_max": round(max(behind, default=0) * 1000, 2)}


async def raw_roundtrip(bootstrap: str, topic: str, partitions: int, rate: float, seconds: float) -> dict:
    """Produce at `rate` for `seconds`; time each record from send to consumption."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, partitions, 1)])
    finally:
        await admin.close()
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=0, enable_idempotence=False)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, fetch_max_wait_ms=100,
                                auto_offset_reset="latest")
    await producer.start()
    await consumer.start()
    try:
        parts = [TopicPartition(topic, p) for p in sorted(await producer.partitions_for(topic))]
        consumer.assign(parts)
        await consumer.seek_to_end(*parts)
        for tp in parts:
            await consumer.position(tp)
        total = int(rate * seconds)
        sent: dict[int, float] = {}
        received: dict[int, float] = {}

        async def consume() -> None:
            while len(received) < total:
                batches = await consumer.getmany(timeout_ms=200)
                now = time.perf_counter()
                for records in batches.values():
                    for record in records:
                        received.setdefault(int(record.value), now)

        reader = asyncio.create_task(consume())
        t0 = time.perf_counter()
        pending = []
        for i in range(total):
            delay = t0 + i / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            sent[i] = time.perf_counter()
            pending.append(await producer.send(topic, str(i).encode(), key=str(i % 97).encode()))
        await asyncio.gather(*pending)
        try:
            await asyncio.wait_for(reader, 30)
        except TimeoutError:
            pass
        latencies = [received[i] - sent[i] for i in received if i in sent]
        return {"sent": total, "received": len(received), **percentiles(latencies)}
    finally:
        await consumer.stop()
        await producer.stop()


async def main(args: argparse.Namespace, bootstrap: str, dsn: str, work: Path) -> None:
    stack = make_stack(bootstrap, dsn, args.partitions, work)
    await ensure_topics(stack.settings)
    for what in ("worker", "projector", "gateway"):
        stack.start(what)
    token = mint_token(stack.settings, "bench", ["responder"])
    headers = {"Authorization": f"Bearer {token}"}
    try:
        async with httpx.AsyncClient(base_url=stack.base_url, timeout=30, headers=headers) as client, \
                aiohttp.ClientSession(headers=headers, timeout=aiohttp.ClientTimeout(total=60),
                                      connector=aiohttp.TCPConnector(limit=args.connections)) as session:
            await wait_ready(stack, client)
            incidents = await open_incidents(client, args.incidents, stack)

            baseline = await raw_roundtrip(bootstrap, f"{stack.settings.topics.prefix}.bench-roundtrip",
                                           args.partitions, args.rate, args.seconds)
            emit(bench="command_to_sse.baseline_raw_roundtrip", rate_per_s=args.rate, seconds=args.seconds,
                 kafka=args.kafka, **baseline)

            arrivals: dict[tuple[str, int], float] = {}
            subscribed = asyncio.Event()
            reader = asyncio.create_task(read_stream(session, f"{stack.base_url}/v1/stream", arrivals, subscribed))
            await asyncio.wait_for(subscribed.wait(), 30)
            pids = {server.name: server.pid for server in stack.servers} | {"bench_client": os.getpid()}
            pids |= {"broker": pid for pid in [args.broker_pid] if pid}
            cpu_before = {name: cpu_seconds(pid) for name, pid in pids.items()}
            load = await command_load(session, stack.base_url, incidents, args.rate, args.seconds)
            cpu = {name: round((cpu_seconds(pid) - cpu_before[name]) / load["elapsed"], 3)
                   for name, pid in pids.items()}
            stack.check()

            keys = {i: key for i, (_, _, key) in load["answered"].items() if key is not None}
            deadline = time.monotonic() + 15
            while any(key not in arrivals for key in keys.values()) and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            reader.cancel()
            await asyncio.gather(reader, return_exceptions=True)

            to_sse = [arrivals[key] - load["sent"][i] for i, key in keys.items() if key in arrivals]
            to_answer = [load["answered"][i][0] - load["sent"][i] for i in load["answered"]]
            statuses = Counter(str(status) for _, status, _ in load["answered"].values())
            result = percentiles(to_sse)
            emit(bench="command_to_sse", rate_per_s=args.rate, seconds=args.seconds, kafka=args.kafka,
                 partitions=args.partitions, incidents=args.incidents,
                 commands=len(load["sent"]), http_statuses=dict(statuses),
                 achieved_rate_per_s=round(len(load["sent"]) / load["elapsed"], 1),
                 scheduler_behind_ms_max=load["scheduler_behind_ms_max"],
                 delivered=len(to_sse), missing=len(keys) - len(to_sse), **result)
            emit(bench="command_to_sse.http_answer", **percentiles(to_answer))
            emit(bench="command_to_sse.cpu_cores_used_during_load", load_average=os.getloadavg()[0], **cpu)
            emit(bench="command_to_sse.gateway_outcome_wait", **await outcome_wait(client))
            if result["count"] and baseline["count"]:
                emit(bench="command_to_sse.ratio", target=TARGET,
                     p50_vs_raw=round(result["p50_ms"] / max(baseline["p50_ms"], 0.01), 1),
                     p99_vs_raw=round(result["p99_ms"] / max(baseline["p99_ms"], 0.01), 1),
                     meets_target=bool(args.rate >= TARGET["rate_per_s"] and result["p50_ms"] <= TARGET["p50_ms"]
                                       and result["p99_ms"] <= TARGET["p99_ms"] and not (len(keys) - len(to_sse))))
    finally:
        stack.stop()


def cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rate", type=float, default=200, help="commands per second")
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--incidents", type=int, default=50, help="incidents the commands are spread over")
    parser.add_argument("--partitions", type=int, default=6)
    parser.add_argument("--connections", type=int, default=200, help="HTTP connections of the load client")
    parser.add_argument("--kafka", default="tansu", help="tansu, apache, or HOST:PORT of a running broker")
    parser.add_argument("--postgres", help="DSN of a running PostgreSQL instead of starting one")
    args = parser.parse_args()

    from warroom.servers import ensure_kafka_jars, start_apache_kafka, start_postgres, start_tansu

    servers = []
    with tempfile.TemporaryDirectory(prefix="warroom-bench-") as tmp:
        work = Path(tmp)
        try:
            args.broker_pid = None
            if args.kafka == "tansu":
                servers.append(start_tansu(work / "kafka"))
            elif args.kafka == "apache":
                servers.append(start_apache_kafka(work / "kafka", jars_dir=ensure_kafka_jars(
                    Path(os.environ.get("WARROOM_CACHE_DIR") or ROOT / ".cache"))))
            if servers:
                bootstrap, args.broker_pid = servers[-1].bootstrap, servers[-1].pid
            else:
                bootstrap = args.kafka
            dsn = args.postgres
            if not dsn:
                servers.append(start_postgres(work / "postgres", durable=True))
                dsn = servers[-1].dsn
            asyncio.run(main(args, bootstrap, dsn, work))
        finally:
            for server in reversed(servers):
                server.stop()


if __name__ == "__main__":
    cli()
