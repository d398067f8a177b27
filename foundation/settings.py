"""Every knob of Warroom in one pydantic-settings model (SPEC §10).

Sources, strongest first: explicit overrides, `WARROOM_*` environment variables
(nested keys joined by `__`, e.g. `WARROOM_KAFKA__BOOTSTRAP`), the TOML file given
by `--config` / `WARROOM_CONFIG` (else `./warroom.toml` when present), defaults.
`examples/warroom.toml` documents each key.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from foundation.maintenance import MaintenanceWindow
from foundation.templates import check, seconds
from foundation.topology import parse_edge, read_file


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

    def name(self, kind: Literal["alerts", "commands", "events", "dlq", "outcomes", "silences"]) -> str:
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
    table_store: str = "memory://"
    web_port: int | None = None

    @model_validator(mode="before")
    @classmethod
    def _no_guarantee_to_choose(cls, given: Any) -> Any:
        if isinstance(given, dict) and "processing_guarantee" in given:
            raise ValueError(
                "'worker.processing_guarantee' is no longer a setting; remove it. The worker "
                "delivers at least once and readers drop repeats; exactly_once (Kafka "
                "transactions) is not offered: Tansu has no transactions, and on Apache Kafka "
                "a restarted worker under them lost changelog writes")
        return given


class ProjectorSettings(Section):
    batch_max: int = Field(default=2000, ge=1)
    batch_wait_ms: int = Field(default=20, ge=0)
    group_id: str = "warroom-projector"
    # When the broker comes back with another or shorter log than the read models describe:
    # "refuse" applies nothing until it is that log again; "rebuild" empties the read models
    # and reads the log there is from its start (what `warroom up` runs on its memory-only broker).
    on_log_reset: Literal["refuse", "rebuild"] = "refuse"


def _duration(value: str) -> str:
    seconds(value)  # raises ValueError naming the text
    return value


Duration = Annotated[str, AfterValidator(_duration)]
"""A Prometheus-style duration: 30s, 5m, 1h30m, 24h."""


def _template(*placeholders: str) -> AfterValidator:
    """A validator refusing a template that names a placeholder other than `placeholders`."""
    return AfterValidator(lambda value: check(value, placeholders))


PROMQL_PLACEHOLDERS = ("label", "service", "window")


class Signal(Section):
    """One signal the Prometheus source reads for every candidate service."""

    query: Annotated[str, _template(*PROMQL_PLACEHOLDERS)]
    worse: Literal["up", "down"] = "up"  # which way is bad: latency and errors up, availability down
    # The signal's ideal value (0 for latency and error ratios, 100 for availability in
    # percent): a change is judged against the distance from it, so a small shift of a
    # whole level is not a fault. Unset: 0 for a signal worse going up, none otherwise.
    best: float | None = None


def _default_signals() -> dict[str, Signal]:
    return {
        # `or vector(0)`: a service with no 5xx yet has an error rate of 0, not no series;
        # a misnamed total metric still leaves no series, so it is reported as no_data.
        "errors": Signal(query='(sum(rate(http_requests_total{{{label}="{service}",status=~"5.."}}[{window}]))'
                         ' or vector(0)) / sum(rate(http_requests_total{{{label}="{service}"}}[{window}]))'),
        "latency": Signal(query="histogram_quantile(0.95, sum by (le) (rate("
                          'http_request_duration_seconds_bucket{{{label}="{service}"}}[{window}])))'),
        "traffic": Signal(query='sum(rate(http_requests_total{{{label}="{service}"}}[{window}]))', worse="down"),
        "saturation": Signal(query='max(rate(process_cpu_seconds_total{{{label}="{service}"}}[{window}]))'),
        "restarts": Signal(query='sum(changes(process_start_time_seconds{{{label}="{service}"}}[{window}]))'),
    }


class PrometheusSource(Section):
    url: str | None = None
    service_label: str = "service"
    window: Duration = "5m"  # {window} in the templates: the range of rate(), changes()...
    step: Duration = "60s"  # resolution of each signal's query_range over baseline + analysis window
    concurrency: int = Field(default=8, ge=1, le=64)  # queries in flight at once within a run
    signals: dict[str, Signal] = Field(default_factory=_default_signals)
    # The signal that counts each service's requests (any steady unit: per second, per
    # step). Ranking weighs an excess by the requests it touched, so a quiet service's
    # big jump does not outweigh a busy one's trouble. None: unweighted.
    volume: str | None = "traffic"

    @field_validator("signals")
    @classmethod
    def _some_signal(cls, value: dict[str, Signal]) -> dict[str, Signal]:
        if not value:
            raise ValueError("name at least one signal (or leave prometheus out of correlation.sources)")
        return value

    @field_validator("volume")
    @classmethod
    def _volume_is_a_signal(cls, value: str | None, info: ValidationInfo) -> str | None:
        signals = info.data.get("signals")
        if value is not None and signals is not None and value not in signals:
            raise ValueError(f"names {value!r}, which is not one of the signals "
                             f"({', '.join(sorted(signals))}); name one, or leave it out")
        return value


LOKI_PLACEHOLDERS = ("label", "service", "window", "step", "baseline_offset")


class LokiSource(Section):
    url: str | None = None
    service_label: str = "app"
    baseline_offset: Duration = "1h"
    error_query: Annotated[str, _template(*LOKI_PLACEHOLDERS)] = \
        '{{{label}="{service}"}} |~ "(?i)(error|exception|fatal)"'
    pattern_limit: int = Field(default=500, ge=1)
    step: Duration = "1m"
    volume_query: Annotated[str, _template(*LOKI_PLACEHOLDERS)] = \
        'sum(count_over_time({{{label}="{service}"}}[{step}]))'
    count_query: Annotated[str, _template(*LOKI_PLACEHOLDERS, "error_query")] = \
        "sum(count_over_time({error_query}[{step}]))"
    baseline_query: Annotated[str, _template(*LOKI_PLACEHOLDERS, "error_query")] = \
        "sum(count_over_time({error_query}[{step}] offset {baseline_offset}))"
    error_ratio: float = Field(default=2.0, ge=1)
    min_error_lines: int = Field(default=10, ge=0)
    top_patterns: int = Field(default=5, ge=1)


class KubernetesSource(Section):
    enabled: bool = False
    kubeconfig: str | None = None
    context: str | None = None
    host: str | None = None
    namespace: str = "default"
    label_selector: Annotated[str, _template("service")] = "app={service}"


class CorrelationSettings(Section):
    timeout_s: float = Field(default=10, gt=0)
    attempts: int = Field(default=3, ge=1, le=20)
    backoff_base_s: float = Field(default=0.2, ge=0)
    backoff_max_s: float = Field(default=2.0, ge=0)
    breaker_failures: int = Field(default=5, ge=1)
    breaker_reset_s: float = Field(default=30, gt=0)
    run_deadline_s: float = Field(default=30, gt=0)
    on_open: bool = True  # start a run when an incident opens (manual runs always work)
    # The analysis window: [anchor - window, anchor + settle], never past the run's own
    # time; the baseline is the `baseline` before it. The anchor is the first alert's
    # starts_at, else the incident's opened_at (streams.correlation.window).
    window: Duration = "10m"
    settle: Duration = "10m"
    baseline: Duration = "24h"
    # The alert label naming the symptom's signal (e.g. signal="latency"); when it names
    # one of the Prometheus signals, ranking explains that signal of the symptom.
    symptom_signal_label: str | None = "signal"
    sources: list[Literal["prometheus", "loki", "kubernetes"]] = ["prometheus", "loki", "kubernetes"]
    prometheus: PrometheusSource = PrometheusSource()
    loki: LokiSource = LokiSource()
    kubernetes: KubernetesSource = KubernetesSource()


class Discovery(Section):
    """Edges read from a service-graph metric: one per (caller, callee) label pair."""

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    query: Annotated[str, _template("window")]
    caller_label: str = Field(min_length=1)
    callee_label: str = Field(min_length=1)


def _default_discovery() -> list[Discovery]:
    return [
        Discovery(name="tempo", query="sum by (client, server) (rate(traces_service_graph_request_total[{window}]))",
                  caller_label="client", callee_label="server"),
        Discovery(name="istio", query="sum by (source_workload, destination_workload) "
                                      "(rate(istio_requests_total[{window}]))",
                  caller_label="source_workload", callee_label="destination_workload"),
    ]


def _edge(text: str) -> str:
    parse_edge(text)
    return text


class TopologySettings(Section):
    edges: list[Annotated[str, AfterValidator(_edge)]] = []  # "caller -> callee"
    file: Path | None = None  # `caller -> callee` lines, or a CSV adjacency matrix (rows call columns)
    discovery: list[Discovery] = Field(default_factory=_default_discovery)
    discovery_window: Duration = "1h"  # {window} in discovery queries
    discovery_timeout_s: float = Field(default=5, gt=0)
    refresh_s: float = Field(default=60, ge=0)  # discovered edges are reused this long
    max_depth: int = Field(default=3, ge=0, le=50)  # hops below the symptom a run examines
    max_candidates: int = Field(default=20, ge=1, le=1000)  # services a run examines, the symptom included

    @field_validator("file")
    @classmethod
    def _file(cls, value: Path | None) -> Path | None:
        if value is not None:
            read_file(value)
        return value

    @field_validator("discovery")
    @classmethod
    def _unique_names(cls, value: list[Discovery]) -> list[Discovery]:
        names = [d.name for d in value]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ValueError(f"discovery names must be unique; repeated: {', '.join(repeated)}")
        return value


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


ReceiverKind = Literal["webhook", "slack", "teams", "email"]


def _http_url(value: str) -> str:
    parsed = urlsplit(value)
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise ValueError(f"{value!r} is not an http(s) URL")
    return value


class Receiver(Section):
    """Where a page goes (SPEC §15). `url` for webhook, slack and teams; `smtp_*` and `to`
    for email. A webhook with a `secret` signs its body: `X-Warroom-Signature: sha256=<hex>`."""

    kind: ReceiverKind
    url: Annotated[str, AfterValidator(_http_url)] | None = None
    secret: SecretStr | None = None
    timeout_s: float = Field(default=5, gt=0, le=60)
    smtp_host: str | None = None
    smtp_port: int = Field(default=25, ge=1, le=65535)
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_starttls: bool = False
    sender: str | None = None  # the From address of email
    to: list[str] = []

    @model_validator(mode="after")
    def _complete(self) -> Receiver:
        if self.kind == "email":
            missing = [k for k in ("smtp_host", "sender") if getattr(self, k) is None]
            if missing or not self.to:
                raise ValueError(f"an email receiver needs {', '.join(missing + ([] if self.to else ['to']))}")
            if self.url is not None or self.secret is not None:
                raise ValueError("url and secret are not used by an email receiver")
        else:
            if self.url is None:
                raise ValueError(f"a {self.kind} receiver needs url")
            if self.secret is not None and self.kind != "webhook":
                raise ValueError("only a webhook receiver signs with a secret")
            if self.smtp_host is not None or self.to:
                raise ValueError(f"smtp_host and to are only for email receivers, not {self.kind}")
        return self


class Escalation(Section):
    after_s: float = Field(gt=0)
    receivers: list[str] = Field(min_length=1)


class Route(Section):
    """Which incidents page whom. Empty `services` / `severities`: any; `labels`: all must match.
    `on_alert`: an alert joining an already open incident pages these receivers again."""

    services: list[str] = []
    severities: list[Literal["critical", "high", "medium", "low"]] = []
    labels: dict[str, str] = {}
    receivers: list[str] = Field(min_length=1)
    escalate: list[Escalation] = []
    on_alert: bool = False

    @field_validator("escalate")
    @classmethod
    def _increasing(cls, value: list[Escalation]) -> list[Escalation]:
        delays = [level.after_s for level in value]
        if delays != sorted(set(delays)):
            raise ValueError("escalation levels need strictly increasing after_s")
        return value


class NotifySettings(Section):
    receivers: dict[str, Receiver] = {}
    routes: list[Route] = []
    retries: int = Field(default=3, ge=0, le=10)  # attempts after the first one
    backoff_s: float = Field(default=1, gt=0)
    max_backoff_s: float = Field(default=30, gt=0)
    # A page or escalation owed longer ago than this is not sent: enabling paging on an
    # old log, or a notifier down for hours, must not page for what is long over.
    max_age_s: float = Field(default=3600, gt=0)
    dashboard_url: Annotated[str, AfterValidator(_http_url)] = "http://127.0.0.1:8080"  # links in pages point here

    @model_validator(mode="after")
    def _known_receivers(self) -> NotifySettings:
        for index, route in enumerate(self.routes):
            named = [("receivers", r) for r in route.receivers] + [
                (f"escalate.{level}.receivers", r)
                for level, step in enumerate(route.escalate) for r in step.receivers
            ]
            for where, name in named:
                if name not in self.receivers:
                    raise ValueError(f"routes.{index}.{where} names receiver {name!r}, which is not in notify.receivers")
        return self


class SilenceSettings(Section):
    maintenance: list[MaintenanceWindow] = []  # recurring windows: [[silences.maintenance]]

    @field_validator("maintenance")
    @classmethod
    def _unique_names(cls, windows: list[MaintenanceWindow]) -> list[MaintenanceWindow]:
        names = [w.name for w in windows]
        for name in names:
            if names.count(name) > 1:
                raise ValueError(f"maintenance window name {name!r} is used twice")
        return windows


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
    topology: TopologySettings = TopologySettings()
    notify: NotifySettings = NotifySettings()
    silences: SilenceSettings = SilenceSettings()

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
