"""Every knob of Warroom in one pydantic-settings model (SPEC §10).

Sources, strongest first: explicit overrides, `WARROOM_*` environment variables
(nested keys joined by `__`, e.g. `WARROOM_KAFKA__BOOTSTRAP`), the TOML file given
by `--config` / `WARROOM_CONFIG` (else `./warroom.toml` when present), defaults.
`examples/warroom.toml` documents each key.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class KafkaSettings(Section):
    bootstrap: str = "127.0.0.1:9092"
    client_id: str = "warroom"
    # Tansu (the embedded broker) has no InitProducerId, so idempotence is opt-in.
    idempotent_producer: bool = False
    request_timeout_s: float = Field(default=30, gt=0)
    # The largest record any of our producers sends, and the `max.message.bytes` of the
    # topics we create, so the broker accepts whatever a producer of ours may send.
    max_message_bytes: int = Field(default=1_048_576, ge=256 * 1024, le=64 * 1024 * 1024)

    @property
    def max_input_bytes(self) -> int:
        """The largest alert or command record taken in: what is derived from one (a
        command, an event, a notice) carries it plus an envelope, and must still fit."""
        return self.max_message_bytes - DERIVED_HEADROOM


DERIVED_HEADROOM = 64 * 1024
"""Bytes an envelope may add to what it carries (ids, hashes, actor, timestamps): far more than enough."""


class TopicSettings(Section):
    prefix: str = Field(default="warroom", pattern=r"^[A-Za-z0-9._-]+$")
    partitions: int = Field(default=6, ge=1, le=1000)
    replication_factor: int = Field(default=1, ge=1)

    def name(self, kind: Literal["alerts", "commands", "events", "dlq", "outcomes"]) -> str:
        return f"{self.prefix}.{kind}"


class PostgresSettings(Section):
    dsn: str = "postgresql://postgres@127.0.0.1:5432/warroom"
    schema_name: str = Field(default="warroom", pattern=r"^[a-z_][a-z0-9_]*$")
    pool_min: int = Field(default=1, ge=0)
    pool_max: int = Field(default=10, ge=1)
    connect_timeout_s: float = Field(default=10, gt=0)

    @field_validator("dsn")
    @classmethod
    def _postgres_url(cls, value: str) -> str:
        if not value.startswith(("postgresql://", "postgres://")):
            raise ValueError("must be a postgresql:// URL")
        return value


class AuthSettings(Section):
    jwt_secret: SecretStr | None = None
    jwt_public_key: str | None = None  # PEM; enables RS256 tokens beside HS256
    issuer: str = "warroom"
    token_ttl_s: int = Field(default=12 * 3600, gt=0)


class GatewaySettings(Section):
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    command_timeout_s: float = Field(default=5, gt=0)
    read_model_wait_s: float = Field(default=2, ge=0)
    min_version_wait_s: float = Field(default=5, ge=0)
    page_limit_max: int = Field(default=200, ge=1)
    max_header_bytes: int = Field(default=32 * 1024, ge=4096)
    max_body_bytes: int = Field(default=1024 * 1024, ge=64 * 1024)
    max_alert_body_bytes: int = Field(default=8 * 1024 * 1024, ge=64 * 1024)


class SSESettings(Section):
    heartbeat_s: float = Field(default=15, gt=0)
    client_queue: int = Field(default=1000, ge=1)
    change_retention: int = Field(default=1_000_000, ge=1000)  # change-feed rows kept for resume


class WorkerSettings(Section):
    processing_guarantee: Literal["at_least_once", "exactly_once"] = "at_least_once"
    table_store: str = "memory://"
    web_port: int | None = None


class ProjectorSettings(Section):
    batch_max: int = Field(default=2000, ge=1)
    batch_wait_ms: int = Field(default=20, ge=0)
    group_id: str = "warroom-projector"
    # When the broker comes back with another or shorter log than the read models describe:
    # "refuse" applies nothing until it is that log again; "rebuild" empties the read models
    # and reads the log there is from its start (what `warroom up` runs on its memory-only broker).
    on_log_reset: Literal["refuse", "rebuild"] = "refuse"


class PrometheusSource(Section):
    url: str | None = None
    service_label: str = "service"
    window: str = "5m"
    queries: dict[str, str] = Field(
        default_factory=lambda: {
            # `or vector(0)`: a service with no 5xx yet has an error rate of 0, not no series;
            # a misnamed total metric still leaves no series, so it is reported as no_data.
            "error_rate": '(sum(rate(http_requests_total{{{label}="{service}",status=~"5.."}}[{window}]))'
            ' or vector(0)) / sum(rate(http_requests_total{{{label}="{service}"}}[{window}]))',
            "latency_p95": "histogram_quantile(0.95, sum by (le) (rate("
            'http_request_duration_seconds_bucket{{{label}="{service}"}}[{window}])))',
            "request_rate": 'sum(rate(http_requests_total{{{label}="{service}"}}[{window}]))',
            "saturation": 'max(rate(process_cpu_seconds_total{{{label}="{service}"}}[{window}]))',
            "restarts": 'sum(changes(process_start_time_seconds{{{label}="{service}"}}[{window}]))',
        }
    )
    thresholds: dict[str, float] = Field(
        default_factory=lambda: {"error_rate": 0.05, "latency_p95": 1.0, "saturation": 0.9, "restarts": 0}
    )
    lookback: str = "30m"  # how far before the incident start to look for when a breach began
    step: str = "15s"  # resolution of that look back (query_range step)


class LokiSource(Section):
    url: str | None = None
    service_label: str = "app"
    window: str = "15m"
    baseline_offset: str = "1h"
    error_query: str = '{{{label}="{service}"}} |~ "(?i)(error|exception|fatal)"'
    pattern_limit: int = Field(default=500, ge=1)
    step: str = "1m"
    volume_query: str = 'sum(count_over_time({{{label}="{service}"}}[{step}]))'
    count_query: str = "sum(count_over_time({error_query}[{step}]))"
    baseline_query: str = "sum(count_over_time({error_query}[{step}] offset {baseline_offset}))"
    error_ratio: float = Field(default=2.0, ge=1)
    min_error_lines: int = Field(default=10, ge=0)
    top_patterns: int = Field(default=5, ge=1)


class KubernetesSource(Section):
    enabled: bool = False
    kubeconfig: str | None = None
    context: str | None = None
    host: str | None = None
    namespace: str = "default"
    label_selector: str = "app={service}"
    window: str = "15m"


class CorrelationSettings(Section):
    timeout_s: float = Field(default=10, gt=0)
    attempts: int = Field(default=3, ge=1, le=20)
    backoff_base_s: float = Field(default=0.2, ge=0)
    backoff_max_s: float = Field(default=2.0, ge=0)
    breaker_failures: int = Field(default=5, ge=1)
    breaker_reset_s: float = Field(default=30, gt=0)
    run_deadline_s: float = Field(default=30, gt=0)
    on_open: bool = True  # start a run when an incident opens (manual runs always work)
    sources: list[Literal["prometheus", "loki", "kubernetes"]] = ["prometheus", "loki", "kubernetes"]
    prometheus: PrometheusSource = PrometheusSource()
    loki: LokiSource = LokiSource()
    kubernetes: KubernetesSource = KubernetesSource()


class SLO(Section):
    name: str
    service: str
    good_query: str
    total_query: str
    objective: float = Field(gt=0, lt=1)
    window: str = "30d"
    burn_window: str = "5m"
    cost_per_minute: float | None = Field(default=None, ge=0)


class ImpactSettings(Section):
    interval_s: float = Field(default=30, gt=0)
    min_change: float = Field(default=0.01, ge=0)
    slos: list[SLO] = []


class IntakeSettings(Section):
    group_by: list[str] = Field(default_factory=lambda: ["service"], min_length=1)
    service_label: str = "service"
    severity_label: str = "severity"
    severity_map: dict[str, Literal["critical", "high", "medium", "low"]] = Field(
        default_factory=lambda: {
            "critical": "critical", "page": "critical", "high": "high", "error": "high",
            "warning": "medium", "medium": "medium", "info": "low", "low": "low",
        }
    )
    default_severity: Literal["critical", "high", "medium", "low"] = "medium"
    mitigate_when_last_resolved: bool = True


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="WARROOM_",
        env_nested_delimiter="__",
        extra="forbid",
        frozen=True,
    )

    data_dir: Path = Path("./data")
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    kafka: KafkaSettings = KafkaSettings()
    topics: TopicSettings = TopicSettings()
    postgres: PostgresSettings = PostgresSettings()
    auth: AuthSettings = AuthSettings()
    gateway: GatewaySettings = GatewaySettings()
    sse: SSESettings = SSESettings()
    worker: WorkerSettings = WorkerSettings()
    projector: ProjectorSettings = ProjectorSettings()
    correlation: CorrelationSettings = CorrelationSettings()
    impact: ImpactSettings = ImpactSettings()
    intake: IntakeSettings = IntakeSettings()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        if _config_file is not None:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=_config_file))
        return tuple(sources)


class SettingsError(Exception):
    """Settings that cannot be used; the message names every offending key."""


_config_file: Path | None = None


def load_settings(config: Path | str | None = None, **overrides: Any) -> Settings:
    """Read settings from overrides, environment and TOML; raise SettingsError naming bad keys."""
    global _config_file
    path = config or os.environ.get("WARROOM_CONFIG")
    if path is None and Path("warroom.toml").is_file():
        path = "warroom.toml"
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise SettingsError(f"config file {path} does not exist")
    secret = os.environ.get("WARROOM_JWT_SECRET")
    if secret:
        auth = dict(overrides.pop("auth", {}) or {})
        auth.setdefault("jwt_secret", secret)
        overrides["auth"] = auth
    _config_file = path
    try:
        return Settings(**overrides)
    except ValidationError as err:
        raise SettingsError(_describe(err, path)) from None
    except Exception as err:  # a TOML syntax error names the file and line
        raise SettingsError(f"cannot read settings from {path}: {err}") from None
    finally:
        _config_file = None


def _describe(err: ValidationError, path: Path | None) -> str:
    lines = []
    for problem in err.errors():
        key = ".".join(str(part) for part in problem["loc"])
        env = "WARROOM_" + "__".join(str(p).upper() for p in problem["loc"] if not isinstance(p, int))
        where = f"{path} or {env}" if path else env
        lines.append(f"setting '{key}': {problem['msg']} (set in {where})")
    return "invalid settings:\n  " + "\n  ".join(lines)
