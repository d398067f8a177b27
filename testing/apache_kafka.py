"""Apache Kafka (KRaft) from its jars on Maven Central, for the tests and benches.

Warroom itself runs on Tansu (`warroom.servers.start_tansu`) or on a broker it is given;
the suite and the benchmarks also run on Apache Kafka, started here as a child process.
"""

from __future__ import annotations

import base64
import fcntl
import os
import shutil
import time
import uuid
from collections.abc import Mapping
from contextlib import contextmanager
from pathlib import Path

from warroom.servers.kafka import KafkaServer, kafka_metadata_ready
from warroom.servers.process import ServerError, ServerUnavailable, _url_host, free_port, run_tool, spawn, wait_ready

KAFKA_VERSION = "4.4.0"
POM = Path(__file__).with_name("pom.xml")
_COMPLETE = ".complete"


# --- Apache Kafka jars from Maven Central ---------------------------------------------

def default_cache_dir() -> Path:
    if env := os.environ.get("WARROOM_CACHE_DIR"):
        return Path(env)
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "warroom"


@contextmanager
def _locked(path: Path):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def ensure_kafka_jars(cache_dir: Path, version: str = KAFKA_VERSION) -> Path:
    """Return ``cache_dir/kafka-<version>/libs`` holding the broker's jars.

    Resolves them with ``mvn`` from Maven Central the first time; the directory
    is marked complete only after a full copy, so an interrupted download is
    redone rather than half-used. Safe to call from concurrent processes.
    """
    root = Path(cache_dir).resolve() / f"kafka-{version}"
    libs = root / "libs"
    if (root / _COMPLETE).exists() and libs.is_dir():
        return libs
    with _locked(root / ".lock"):
        if (root / _COMPLETE).exists() and libs.is_dir():
            return libs
        mvn = shutil.which("mvn")
        if mvn is None:
            raise ServerUnavailable(
                "apache-kafka: `mvn` is not on PATH, so the Kafka jars cannot be resolved "
                "(apt-get install maven; Java 17 from openjdk-17-jdk-headless)")
        staging = root / f"libs.partial-{os.getpid()}"
        shutil.rmtree(staging, ignore_errors=True)
        shutil.copyfile(POM, root / "pom.xml")
        run_tool(
            "mvn (kafka jars)",
            [mvn, "-q", "-B", "-f", root / "pom.xml", f"-Dkafka.version={version}",
             "dependency:copy-dependencies", f"-DoutputDirectory={staging}"],
            root / "mvn.log", cwd=root, timeout=900,
        )
        if not (staging / f"kafka_2.13-{version}.jar").exists():
            raise ServerError(f"apache-kafka: mvn finished but kafka_2.13-{version}.jar is "
                              f"missing from {staging}; see {root / 'mvn.log'}")
        shutil.rmtree(libs, ignore_errors=True)
        staging.rename(libs)
        jars = sorted(p.name for p in libs.glob("*.jar"))
        (root / _COMPLETE).write_text("\n".join(jars) + "\n")
    return libs


# --- Apache Kafka broker ---------------------------------------------------------------

def java_binary() -> str:
    if home := os.environ.get("JAVA_HOME"):
        candidate = Path(home) / "bin" / "java"
        if candidate.exists():
            return str(candidate)
    if found := shutil.which("java"):
        return found
    raise ServerUnavailable(
        "apache-kafka: `java` is not on PATH (apt-get install openjdk-17-jdk-headless)")


def _kafka_uuid() -> str:
    # Kafka's own Uuid.randomUuid() avoids a leading '-': the storage tool would read it as a flag.
    while True:
        value = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        if not value.startswith("-"):
            return value


def _broker_properties(host: str, port: int, controller_port: int, log_dirs: Path,
                       extra: Mapping[str, str]) -> str:
    h = _url_host(host)
    props = {
        "process.roles": "broker,controller",
        "node.id": "1",
        # A static single-voter quorum: the voter set lives in this file, not in
        # the metadata log, so a restart may pick another controller port.
        "controller.quorum.voters": f"1@{h}:{controller_port}",
        "listeners": f"PLAINTEXT://{h}:{port},CONTROLLER://{h}:{controller_port}",
        "advertised.listeners": f"PLAINTEXT://{h}:{port}",
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "PLAINTEXT",
        "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
        "log.dirs": str(log_dirs),
        "num.partitions": "6",
        "default.replication.factor": "1",
        "auto.create.topics.enable": "true",
        "offsets.topic.replication.factor": "1",
        "offsets.topic.num.partitions": "6",
        "transaction.state.log.replication.factor": "1",
        "transaction.state.log.min.isr": "1",
        "transaction.state.log.num.partitions": "6",
        "share.coordinator.state.topic.replication.factor": "1",
        "share.coordinator.state.topic.min.isr": "1",
        "group.initial.rebalance.delay.ms": "0",
        "num.network.threads": "2",
        "num.io.threads": "4",
        "log.retention.hours": "-1",
    }
    props.update(extra)
    return "".join(f"{k}={v}\n" for k, v in props.items())


_LOG4J2 = """\
status = warn
appender.out.type = Console
appender.out.name = STDOUT
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = {level}
rootLogger.appenderRef.out.ref = STDOUT
logger.raftserver.name = kafka.server.KafkaRaftServer
logger.raftserver.level = INFO
logger.broker.name = kafka.server.BrokerServer
logger.broker.level = INFO
logger.controller.name = kafka.server.ControllerServer
logger.controller.level = INFO
"""


def start_apache_kafka(
    data_dir: Path,
    *,
    host: str = "127.0.0.1",
    port: int | None = None,
    jars_dir: Path | None = None,
    controller_port: int | None = None,
    heap: str = "1g",
    properties: Mapping[str, str] | None = None,
    timeout: float = 120,
) -> KafkaServer:
    """Start a single-node KRaft Apache Kafka broker and return once clients can
    bootstrap from it.

    ``data_dir`` keeps the log segments, so starting again on the same directory
    (see ``Server.restart``) keeps every topic and offset. Jars come from
    ``jars_dir`` or from ``ensure_kafka_jars(default_cache_dir())``.
    ``properties`` overrides or adds broker settings.
    """
    data_dir = Path(data_dir).resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    java = java_binary()
    libs = Path(jars_dir).resolve() if jars_dir else ensure_kafka_jars(default_cache_dir())
    port = port or free_port(host)
    controller_port = controller_port or free_port(host)
    log_dirs = data_dir / "kraft-logs"
    config = data_dir / "server.properties"
    log4j = data_dir / "log4j2.properties"
    log_path = data_dir / "kafka.log"
    config.write_text(_broker_properties(host, port, controller_port, log_dirs, properties or {}))
    log4j.write_text(_LOG4J2.format(level=os.environ.get("WARROOM_KAFKA_LOG_LEVEL", "WARN")))
    classpath = f"{libs}/*"
    common = ["-Djava.awt.headless=true", f"-Dlog4j2.configurationFile={log4j}",
              f"-Dkafka.logs.dir={data_dir}"]
    if not (log_dirs / "meta.properties").exists():
        started = time.monotonic()
        run_tool(
            "kafka-storage format",
            [java, "-Xmx256m", "-XX:TieredStopAtLevel=1", *common, "-cp", classpath,
             "kafka.tools.StorageTool", "format", "-t", _kafka_uuid(), "-c", config],
            log_path, timeout=120,
        )
        with open(log_path, "a") as fh:
            fh.write(f"--- storage formatted in {time.monotonic() - started:.1f}s\n")
    argv = [java, "-Xms256m", f"-Xmx{heap}", "-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20",
            "-XX:+ExitOnOutOfMemoryError", *common, "-cp", classpath, "kafka.Kafka", config]
    server = KafkaServer(
        name="apache-kafka", process=spawn("apache-kafka", argv, log_path, cwd=data_dir),
        host=host, port=port, data_dir=data_dir, log_path=log_path, flavor="apache",
        _relaunch=lambda: start_apache_kafka(
            data_dir, host=host, port=port, jars_dir=libs, controller_port=controller_port,
            heap=heap, properties=properties, timeout=timeout),
    )
    return wait_ready(server, lambda: kafka_metadata_ready(host, port), timeout=timeout,
                      interval=0.2)
