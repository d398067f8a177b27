"""Command round trip on the embedded default (SPEC §12: p50 ≤ 50 ms, p99 ≤ 150 ms at
20 commands/s on `warroom up`, Tansu).

What is timed: `POST /v1/incidents/{id}/notes` → its 2xx answer, against `warroom up`
exactly as a user starts it (its own Tansu broker and PostgreSQL, worker, projector and
gateway as supervised children, default settings), open-loop at the given rate.

Baseline, in the same run on the same Tansu (the one `warroom up` started, found in its
`stack.json`): a raw aiokafka produce → consume round trip at the same rate.

    uv run python -m bench.embedded --rate 20 --seconds 20

Prints one JSON object per line, the last one the row for `bench.report`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import aiohttp
import httpx

from bench.harness.broker import fresh_prefix, raw_roundtrip
from bench.harness.cli import parser_for, run
from bench.harness.load import add_notes
from bench.harness.measure import CpuMeter, emit, emit_row, percentiles
from bench.harness.servers import ROOT, Server, free_port, log_tail, spawn
from bench.harness.stack import READY_TIMEOUT_S, open_incidents, wait_ready

RAW = "raw produce→consume round trip on the same Tansu"
PARTITIONS = 6  # the default topic count `warroom up` creates


def start_up(data_dir: Path, port: int) -> Server:
    """`warroom up` with default settings (none of ours leak into it) on 127.0.0.1:`port`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("WARROOM_")} | {"PYTHONUNBUFFERED": "1"}
    log = data_dir.parent / "warroom-up.log"
    argv = [sys.executable, "-m", "warroom", "up", "--host", "127.0.0.1", "--port", str(port),
            "--data-dir", str(data_dir)]
    return Server(name="warroom up", process=spawn("warroom up", argv, log, env=env, cwd=ROOT), host="127.0.0.1",
                  port=port, data_dir=data_dir, log_path=log)


def stack_file(up: Server, timeout: float = READY_TIMEOUT_S) -> dict:
    """What `warroom up` wrote into its data directory about the processes it started."""
    path = up.data_dir / "stack.json"
    deadline = time.monotonic() + timeout
    while not path.is_file():
        if not up.alive():
            raise RuntimeError(f"warroom up exited:\n{log_tail(up.log_path)}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"no {path} after {timeout:.0f}s:\n{log_tail(up.log_path)}")
        time.sleep(0.2)
    return json.loads(path.read_text())


def token(data_dir: Path) -> str:
    """A responder token, minted the way the README says (`warroom token --data-dir`)."""
    return subprocess.run([sys.executable, "-m", "warroom", "token", "--role", "responder", "--sub", "bench",
                           "--data-dir", str(data_dir)], cwd=ROOT, check=True, capture_output=True,
                          text=True).stdout.strip()


async def main(args, found, work, load) -> None:
    def check() -> None:
        if not up.alive():
            raise RuntimeError(f"warroom up exited:\n{log_tail(up.log_path)}")

    up = start_up(work / "up", free_port())
    try:
        stack = stack_file(up)
        headers = {"Authorization": f"Bearer {token(up.data_dir)}"}
        async with httpx.AsyncClient(base_url=stack["url"], timeout=30, headers=headers) as client, \
                aiohttp.ClientSession(headers=headers, timeout=aiohttp.ClientTimeout(total=60)) as session:
            await wait_ready(client, check)
            incidents = await open_incidents(client, args.incidents, check)
            baseline = await raw_roundtrip(stack["kafka"], f"{fresh_prefix('roundtrip')}.raw", PARTITIONS,
                                           args.rate, args.seconds)
            emit(bench="embedded.baseline_raw_roundtrip", rate_per_s=args.rate, seconds=args.seconds, **baseline)
            cpu = CpuMeter(stack["children"], {"bench_client": os.getpid()})
            sent = await add_notes(session, stack["url"], incidents, args.rate, args.seconds)
            cores = cpu.cores()
            check()
        answered = percentiles(sent.answer_latencies())
        statuses = Counter(str(status) for _, status, _ in sent.answered.values())
        ok = answered["count"] / len(sent.sent) if sent.sent else 0.0
        emit(bench="embedded", rate_per_s=args.rate, seconds=args.seconds, commands=len(sent.sent),
             http_statuses=dict(statuses), achieved_rate_per_s=sent.achieved_rate(args.rate), **answered)
        emit(bench="embedded.cpu_cores_used_during_load", **cores)
        emit_row("embedded", load,
                 {"p50_ms": answered["p50_ms"], "p99_ms": answered["p99_ms"], "rate": sent.achieved_rate(args.rate),
                  "answered": round(ok, 4)},
                 {RAW: {"p50_ms": baseline["p50_ms"], "p99_ms": baseline["p99_ms"]}},
                 kafka="tansu (warroom up)", commands=len(sent.sent), seconds=args.seconds, incidents=args.incidents,
                 http_statuses=dict(statuses), cpu_cores=cores)
    finally:
        up.stop(timeout=60)


if __name__ == "__main__":
    parser = parser_for(__doc__, kafka=None)
    parser.add_argument("--rate", type=float, default=20, help="commands per second")
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--incidents", type=int, default=20, help="incidents the commands are spread over")
    run(main, parser.parse_args())
