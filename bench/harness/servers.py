"""The servers a benchmark runs on: a Kafka broker (Apache Kafka from the cached jars, or
Tansu) and PostgreSQL, started fresh in the row's work directory, or ones already running.

The one module of `bench` that uses the launchers of `warroom.servers` (child processes
that die with their parent, free ports): the rest takes them from here."""

from __future__ import annotations

import os
import resource
import tempfile
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from testing import ensure_kafka_jars, start_apache_kafka
from warroom.servers import Server, free_port, start_postgres, start_tansu
from warroom.servers.process import log_tail, spawn

__all__ = ["ROOT", "Server", "Servers", "free_port", "jar_cache_dir", "log_tail", "raise_open_files", "servers",
           "spawn", "work_dir"]

ROOT = Path(__file__).resolve().parents[2]
KAFKA_CHOICES = ("apache", "tansu")


def jar_cache_dir() -> Path:
    """Where Apache Kafka's jars are kept (as for the tests: `.cache/`, git-ignored)."""
    return Path(os.environ.get("WARROOM_CACHE_DIR") or ROOT / ".cache")


@dataclass
class Servers:
    """Where the row's broker and database are, and the pids of those it started."""

    kafka: str
    bootstrap: str | None
    dsn: str | None
    pids: dict[str, int] = field(default_factory=dict)


@contextmanager
def work_dir(keep: str | None, prefix: str) -> Iterator[Path]:
    """`keep` if given (created; left in place for a look afterwards), else a temporary directory."""
    if keep:
        path = Path(keep).resolve()
        path.mkdir(parents=True, exist_ok=True)
        yield path
        return
    with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
        yield Path(tmp)


@contextmanager
def servers(work: Path, kafka: str | None, postgres: str | bool = False, durable: bool = True) -> Iterator[Servers]:
    """Start what the row needs in `work` and stop it afterwards.

    `kafka`: "apache", "tansu", a HOST:PORT used as it is, or None for no broker.
    `postgres`: True to start one (`durable` False turns fsync off), a DSN used as it is,
    or False for none.
    """
    with ExitStack() as started:
        found = Servers(kafka=kafka or "none", bootstrap=None, dsn=None)
        if kafka == "apache":
            broker = started.enter_context(start_apache_kafka(work / "kafka", jars_dir=ensure_kafka_jars(jar_cache_dir())))
        elif kafka == "tansu":
            broker = started.enter_context(start_tansu(work / "kafka"))
        else:
            broker = None
            found.bootstrap = kafka
            found.kafka = "external" if kafka else "none"
        if broker is not None:
            found.bootstrap, found.pids["broker"] = broker.bootstrap, broker.pid
        if postgres is True:
            database = started.enter_context(start_postgres(work / "postgres", durable=durable))
            found.dsn, found.pids["postgres"] = database.dsn, database.pid
        elif postgres:
            found.dsn = postgres
        yield found


def raise_open_files(needed: int) -> int:
    """Raise this process's open-file limit (and so its children's) to at least `needed`;
    the new soft limit. Fails naming the hard limit when it is lower."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < needed:
        raise RuntimeError(f"{needed} open files are needed but the hard limit (ulimit -Hn) is {hard}")
    if soft == resource.RLIM_INFINITY or soft >= needed:
        return soft
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard if hard != resource.RLIM_INFINITY else needed, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]
