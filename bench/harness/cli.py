"""The frame every benchmark module runs in: its options for servers and work directory,
the servers started for it, and the machine load sampled for as long as it runs."""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path

from bench.harness.measure import MachineLoad
from bench.harness.servers import Servers, servers, work_dir

Main = Callable[[argparse.Namespace, Servers, Path, MachineLoad], Awaitable[None]]


def parser_for(doc: str, *, kafka: str | None = "apache", postgres: bool = False) -> argparse.ArgumentParser:
    """An option parser with the module docstring as help and the shared server options."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    if kafka:
        parser.add_argument("--kafka", default=kafka,
                            help=f"apache, tansu, or HOST:PORT of a running broker (default {kafka})")
    if postgres:
        parser.add_argument("--postgres", help="DSN of a running PostgreSQL instead of starting one")
        parser.add_argument("--no-fsync", action="store_true", help="start PostgreSQL without fsync")
    parser.add_argument("--data-dir", help="keep servers' data and processes' logs here (default: a temporary directory)")
    return parser


def run(main: Main, args: argparse.Namespace, *, postgres: bool = False) -> None:
    """Start the servers `args` ask for, run `main(args, servers, work, load)`, stop them."""
    load = MachineLoad()
    try:
        with work_dir(args.data_dir, "warroom-bench-") as work, servers(
                work, getattr(args, "kafka", None), (getattr(args, "postgres", None) or True) if postgres else False,
                durable=not getattr(args, "no_fsync", False)) as found:
            asyncio.run(main(args, found, work, load))
    finally:
        load.stop()
