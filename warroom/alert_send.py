"""`warroom alert send`: publish one alert to the alerts topic, as a producer would."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from contracts.alerts import Alert
from streams.alert_reading import fingerprint, group_key, refusal
from foundation.settings import Settings, SettingsError


class AlertSendError(Exception):
    """An alert that cannot be sent; the message says why."""


def pairs(items: Sequence[str] | None, what: str) -> dict[str, str]:
    """`k=v` arguments as a dict; AlertSendError for one without `=`."""
    out: dict[str, str] = {}
    for item in items or ():
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise AlertSendError(f"--{what} {item!r}: expected key=value")
        out[key] = value
    return out


def build_alert(settings: Settings, *, service: str, name: str, severity: str | None, resolve: bool,
                labels: dict[str, str], annotations: dict[str, str], fingerprint: str | None,
                now: datetime) -> Alert:
    """The alert the flags describe: `alertname`, the service and severity labels (their
    names from `intake`), then the extra labels; resolved ones end `now`."""
    intake = settings.intake
    all_labels = {"alertname": name, intake.service_label: service}
    if severity:
        all_labels[intake.severity_label] = severity
    all_labels.update(labels)
    alert = Alert(fingerprint=fingerprint, status="resolved" if resolve else "firing", labels=all_labels,
                  annotations=annotations, starts_at=now, ends_at=now if resolve else None, source="warroom-cli")
    problem = refusal(alert, intake)
    if problem is not None:
        raise AlertSendError(f"{problem[0]}: {problem[1]}")
    return alert


def bootstrap_for(settings: Settings, data_dir: Path | None) -> str:
    """The broker to publish to: the one `warroom up` recorded in DATA_DIR/stack.json when
    given, else `kafka.bootstrap` from settings."""
    if data_dir is None:
        return settings.kafka.bootstrap
    from warroom.devstack import read_stack

    try:
        return read_stack(data_dir)["kafka"]
    except SettingsError as err:
        raise AlertSendError(str(err)) from None


async def send_alert(settings: Settings, bootstrap: str, alert: Alert) -> dict[str, object]:
    """Publish `alert` keyed by its group key; return where it landed once acknowledged."""
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, client_id=f"{settings.kafka.client_id}-cli",
        enable_idempotence=settings.kafka.idempotent_producer, acks="all",
        max_request_size=settings.kafka.max_message_bytes,
        request_timeout_ms=int(settings.kafka.request_timeout_s * 1000))
    topic = settings.topics.name("alerts")
    key = group_key(alert.labels, settings.intake)
    try:
        await producer.start()
        written = await producer.send_and_wait(topic, alert.model_dump_json().encode(), key=key.encode())
    except (KafkaError, OSError) as err:
        raise AlertSendError(f"cannot publish to {topic} at {bootstrap}: {err}") from None
    finally:
        await producer.stop()
    return {"topic": written.topic, "partition": written.partition, "offset": written.offset,
            "key": key, "fingerprint": fingerprint(alert), "status": alert.status}


def now() -> datetime:
    return datetime.now(UTC)
