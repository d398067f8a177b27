"""Which servers the suite runs on, and what happens when one cannot be had."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn, TypeVar

import pytest

from warroom.servers import ServerUnavailable

REPO_ROOT = Path(__file__).resolve().parents[2]
KAFKA_ENV = "WARROOM_TEST_KAFKA"

T = TypeVar("T")


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() == "true"


def server_unavailable(what: str, reason: object) -> NoReturn:
    """The one policy for a server the suite cannot start on this machine:
    skip loudly on a developer's machine, fail under CI (``CI=true``)."""
    message = f"SERVER MISSING: {what} cannot run here: {reason}"
    if in_ci():
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


def start_or_give_up(what: str, start: Callable[[], T]) -> T:
    """Run ``start``; a missing binary goes through ``server_unavailable``,
    any other failure is a real error and propagates."""
    try:
        return start()
    except ServerUnavailable as exc:
        missing = exc
    server_unavailable(what, missing)  # outside the except: no chained traceback


def jar_cache_dir() -> Path:
    """Where Apache Kafka's jars are kept between runs (git-ignored)."""
    return Path(os.environ.get("WARROOM_CACHE_DIR") or REPO_ROOT / ".cache")


def kafka_choice() -> str:
    """``apache``, ``tansu`` or an external ``HOST:PORT``, from $WARROOM_TEST_KAFKA;
    by default Apache Kafka when ``java`` and ``mvn`` exist, else Tansu."""
    choice = os.environ.get(KAFKA_ENV, "").strip()
    if choice:
        return choice
    return "apache" if shutil.which("java") and shutil.which("mvn") else "tansu"


@dataclass(frozen=True)
class ExternalKafka:
    """A broker the suite did not start (``WARROOM_TEST_KAFKA=HOST:PORT``)."""

    bootstrap: str
    flavor: str = "external"

    @property
    def host(self) -> str:
        return self.bootstrap.rsplit(":", 1)[0]

    @property
    def port(self) -> int:
        return int(self.bootstrap.rsplit(":", 1)[1])


def come_back_empty(server) -> None:
    """Stop the broker and start it again on the same port holding no log at all, as a
    memory-only Tansu does by itself and an Apache Kafka does whose storage was lost
    (formatted again, so under another cluster id)."""
    if server.flavor == "apache":
        server.stop()
        shutil.rmtree(server.data_dir / "kraft-logs")
    server.restart()


@contextmanager
def outside_pytest_tmp(prefix: str) -> Iterator[Path]:
    """A fresh directory outside pytest's temporary root, removed afterwards.

    Every pytest session that starts takes group and other access away from that root
    (`/tmp/pytest-of-<user>`), and PostgreSQL runs as an unprivileged user of its own when
    the suite runs as root: a data directory under that root stops being reachable by
    its server the moment another session starts on the same machine."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)
