"""Debian's Prometheus and Alertmanager binaries on free ports."""

from __future__ import annotations

import json
import os
import shutil
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path

from .process import HttpServer, ServerUnavailable, _url_host, free_port, run_tool, spawn, wait_ready


def _binary(name: str, package: str, label: str, env_var: str) -> str:
    """``$env_var`` if set, else ``name`` on PATH or in /usr/bin."""
    override = os.environ.get(env_var)
    if override:
        if not os.access(override, os.X_OK):
            raise ServerUnavailable(f"{label}: {env_var}={override!r} is not an executable file")
        return override
    found = shutil.which(name) or (f"/usr/bin/{name}" if Path(f"/usr/bin/{name}").exists() else None)
    if found is None:
        raise ServerUnavailable(f"{label}: `{name}` is not installed (apt-get install -y {package})")
    return found


def prometheus_binary() -> str:
    """Path of the `prometheus` binary; ServerUnavailable saying how to get it."""
    return _binary("prometheus", "prometheus", "prometheus", "WARROOM_PROMETHEUS_BIN")


def alertmanager_binary() -> str:
    """Path of the `prometheus-alertmanager` binary; ServerUnavailable saying how to get it."""
    return _binary("prometheus-alertmanager", "prometheus-alertmanager", "alertmanager", "WARROOM_ALERTMANAGER_BIN")


# Local servers only: never route a readiness probe through an HTTP proxy.
_opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def http_ready(url: str, timeout: float = 2.0) -> bool:
    try:
        with _opener.open(url, timeout=timeout) as response:
            return response.status == 200
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return False


def _yaml(value: object) -> str:
    # JSON is YAML: no YAML library needed to write these configs.
    return json.dumps(value, indent=2) + "\n"


def start_prometheus(
    data_dir: Path,
    *,
    scrape_targets: Sequence[str],
    scrape_interval: str = "1s",
    host: str = "127.0.0.1",
    port: int | None = None,
    job: str = "warroom",
    rule_files: Sequence[Path] = (),
    alertmanagers: Sequence[str] = (),
    timeout: float = 60,
    retention: str | None = None,
) -> HttpServer:
    """Start Prometheus scraping ``scrape_targets`` ("host:port", path /metrics)
    every ``scrape_interval`` under job ``job``; return once ``/-/ready`` answers.

    ``rule_files`` are evaluated at the same interval and fire to
    ``alertmanagers`` ("host:port"). The TSDB lives in ``data_dir/tsdb``;
    ``--web.enable-lifecycle`` allows ``POST /-/reload`` and ``/-/quit``.
    With no targets nothing is scraped: a TSDB backfilled into ``data_dir/tsdb``
    beforehand is served as it is, kept for ``retention`` (e.g. "100y") when given.
    """
    binary = prometheus_binary()
    data_dir = Path(data_dir).resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    port = port or free_port(host)
    config: dict[str, object] = {
        "global": {"scrape_interval": scrape_interval, "evaluation_interval": scrape_interval,
                   "scrape_timeout": scrape_interval},
        "scrape_configs": [{"job_name": job, "static_configs": [{"targets": list(scrape_targets)}]}]
        if scrape_targets else [],
    }
    if rule_files:
        config["rule_files"] = [str(p) for p in rule_files]
    if alertmanagers:
        config["alerting"] = {"alertmanagers": [{"static_configs": [{"targets": list(alertmanagers)}]}]}
    config_path = data_dir / "prometheus.yml"
    config_path.write_text(_yaml(config))
    address = f"{_url_host(host)}:{port}"
    argv = [binary, f"--config.file={config_path}", f"--storage.tsdb.path={data_dir / 'tsdb'}",
            f"--web.listen-address={address}", "--web.enable-lifecycle", "--log.level=warn"]
    if retention:
        argv.append(f"--storage.tsdb.retention.time={retention}")
    log_path = data_dir / "prometheus.log"
    server = HttpServer(
        name="prometheus", process=spawn("prometheus", argv, log_path, cwd=data_dir),
        host=host, port=port, data_dir=data_dir, log_path=log_path,
        _relaunch=lambda: start_prometheus(
            data_dir, scrape_targets=scrape_targets, scrape_interval=scrape_interval, host=host,
            port=port, job=job, rule_files=rule_files, alertmanagers=alertmanagers, timeout=timeout,
            retention=retention),
    )
    return wait_ready(server, lambda: http_ready(f"http://{address}/-/ready"), timeout=timeout)


def start_alertmanager(
    data_dir: Path,
    *,
    webhook_url: str | None = None,
    host: str = "127.0.0.1",
    port: int | None = None,
    group_wait: str = "1s",
    group_interval: str = "1s",
    repeat_interval: str = "1s",
    timeout: float = 60,
    webhook_bearer_token: str | None = None,
    group_by: Sequence[str] = ("alertname",),
) -> HttpServer:
    """Start a single (non-clustered) Alertmanager whose only receiver posts
    every notification to ``webhook_url`` (or drops it when None), with
    ``Authorization: Bearer <webhook_bearer_token>`` when given; return once
    ``/-/ready`` answers. Notifications group alerts by ``group_by`` labels.
    Timings default to about a second, for tests."""
    binary = alertmanager_binary()
    data_dir = Path(data_dir).resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    port = port or free_port(host)
    receiver: dict[str, object] = {"name": "default"}
    if webhook_url:
        webhook: dict[str, object] = {"url": webhook_url, "send_resolved": True}
        if webhook_bearer_token:
            webhook["http_config"] = {"authorization": {"type": "Bearer", "credentials": webhook_bearer_token}}
        receiver["webhook_configs"] = [webhook]
    config = {
        "route": {"receiver": "default", "group_by": list(group_by), "group_wait": group_wait,
                  "group_interval": group_interval, "repeat_interval": repeat_interval},
        "receivers": [receiver],
    }
    config_path = data_dir / "alertmanager.yml"
    config_path.write_text(_yaml(config))
    address = f"{_url_host(host)}:{port}"
    argv = [binary, f"--config.file={config_path}", f"--storage.path={data_dir / 'state'}",
            f"--web.listen-address={address}", "--cluster.listen-address=", "--log.level=warn"]
    log_path = data_dir / "alertmanager.log"
    server = HttpServer(
        name="alertmanager", process=spawn("alertmanager", argv, log_path, cwd=data_dir),
        host=host, port=port, data_dir=data_dir, log_path=log_path,
        _relaunch=lambda: start_alertmanager(
            data_dir, webhook_url=webhook_url, host=host, port=port, group_wait=group_wait,
            group_interval=group_interval, repeat_interval=repeat_interval, timeout=timeout,
            webhook_bearer_token=webhook_bearer_token, group_by=group_by),
    )
    return wait_ready(server, lambda: http_ready(f"http://{address}/-/ready"), timeout=timeout)


def backfill_openmetrics(samples: Path, tsdb: Path, log_path: Path, *, timeout: float = 600,
                         max_block_duration: str = "10000h") -> None:
    """Turn an OpenMetrics file (every sample with its timestamp) into TSDB blocks in
    ``tsdb`` with ``promtool tsdb create-blocks-from openmetrics``, for a Prometheus
    started over ``tsdb`` afterwards.

    promtool reads the whole input once per block it writes, so blocks are allowed to
    span up to ``max_block_duration`` (its default is 2 h: hundreds of passes over weeks
    of samples)."""
    binary = _binary("promtool", "prometheus", "promtool", "WARROOM_PROMTOOL_BIN")
    tsdb.mkdir(parents=True, exist_ok=True)
    run_tool("promtool", [binary, "tsdb", "create-blocks-from", "openmetrics", "--quiet",
                          f"--max-block-duration={max_block_duration}", str(samples), str(tsdb)],
             log_path, timeout=timeout)
