"""Reading an alert (SPEC §5), pure: what it says, and the notices the intake agent reads.

What an alert says: its fingerprint, service, group, title and severity, and whether it
can be taken in at all (`refusal`). The gateway and `warroom alert send` use these at the
edge, before an alert is produced; `streams.intake` reacts to what they make of it.
A notice (`AlertNotice`, `IncidentNotice`) is one thing a group must hear about: a
message on the intake's notices topic, keyed by that group.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Annotated, Literal
from urllib.parse import urlencode
from uuid import UUID

from pydantic import Field, TypeAdapter

from contracts.alerts import Alert
from contracts.common import Message, Severity, UtcDatetime
from foundation.settings import IntakeSettings

UNKNOWN_SERVICE = "unknown"
"""The service of an alert without the service label: such an alert still pages someone."""

ALERTNAME = "alertname"
SUMMARY = "summary"
DESCRIPTION = "description"
FINGERPRINT_CHARS = 32
SERVICE_MAX = 200  # OpenIncident.service
TITLE_MAX = 300  # OpenIncident.title
DESCRIPTION_MAX = 20_000  # OpenIncident.description


# --- what an alert says --------------------------------------------------------------


def canonical_labels(labels: Mapping[str, str]) -> bytes:
    """The labels as canonical JSON: sorted keys, no whitespace, UTF-8."""
    return json.dumps(labels, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def fingerprint(alert: Alert) -> str:
    """The alert's own fingerprint, else the first 32 hex digits of the SHA-256 of its
    canonical labels: the same labels always name the same alert."""
    if alert.fingerprint:
        return alert.fingerprint
    return hashlib.sha256(canonical_labels(alert.labels)).hexdigest()[:FINGERPRINT_CHARS]


def service_of(labels: Mapping[str, str], intake: IntakeSettings) -> str:
    """The value of the service label; `unknown` when it is missing or empty."""
    return labels.get(intake.service_label) or UNKNOWN_SERVICE


def group_key(labels: Mapping[str, str], intake: IntakeSettings) -> str:
    """The group an alert (or an incident, by its labels) belongs to: with one `group_by`
    label its value (by default the service: `checkout`), with several the values in
    configured order, URL-encoded (`service=checkout&env=prod`).

    The service label counts with its `service_of` value, so an incident opened with
    that service, whatever its labels say, lands in the same group. This is also the
    key producers should give an alert record: then it is taken in where it arrives.
    """
    values = [(name, service_of(labels, intake) if name == intake.service_label else labels.get(name, ""))
              for name in intake.group_by]
    return values[0][1] if len(values) == 1 else urlencode(values)


def title_of(alert: Alert) -> str:
    """`alertname: summary`, or whichever of the two exists, else a title naming the labels."""
    name = alert.labels.get(ALERTNAME, "").strip()
    summary = alert.annotations.get(SUMMARY, "").strip()
    if name and summary:
        title = f"{name}: {summary}"
    else:
        title = name or summary or "alert " + ", ".join(f"{k}={v}" for k, v in sorted(alert.labels.items()))
    return _clip(title, TITLE_MAX)


def severity_of(labels: Mapping[str, str], intake: IntakeSettings) -> Severity:
    """The severity label mapped through `severity_map` (case-insensitive), else the default."""
    raw = labels.get(intake.severity_label, "").strip().lower()
    return Severity(intake.severity_map.get(raw, intake.default_severity))


def refusal(alert: Alert, intake: IntakeSettings) -> tuple[str, str] | None:
    """Why `alert` cannot become commands, as `(field, message)`; None when it can.

    Text must be storable (no NUL characters, no unpaired surrogates) and the service
    label no longer than an incident's service may be.
    """
    if not _storable("".join(text for _, text in _texts(alert))):  # one check for the usual case
        for field_name, text in _texts(alert):
            if "\x00" in text:
                return field_name, "must not contain NUL characters"
            if not _storable(text):
                return field_name, "must be valid Unicode (no unpaired surrogates)"
    service = alert.labels.get(intake.service_label)
    if service is not None and len(service) > SERVICE_MAX:
        return f"labels.{intake.service_label}", f"must be at most {SERVICE_MAX} characters"
    return None


def _texts(alert: Alert):
    for kind in ("labels", "annotations"):
        for key, value in getattr(alert, kind).items():
            yield f"{kind}", key
            yield f"{kind}.{key}", value
    for name in ("fingerprint", "source"):
        value = getattr(alert, name)
        if value is not None:
            yield name, value


def _storable(text: str) -> bool:
    if "\x00" in text:
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def description_of(alert: Alert) -> str | None:
    """The description annotation, clipped to what an incident holds; None when empty."""
    text = alert.annotations.get(DESCRIPTION, "").strip()
    return _clip(text, DESCRIPTION_MAX) if text else None


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


# --- notices: what the intake agent reads, keyed by group --------------------------


class AlertNotice(Message):
    """An alert routed to its group. `received_at` is the alert record's timestamp, so a
    redelivered alert carries the same one."""

    kind: Literal["alert"] = "alert"
    group_key: str
    fingerprint: str
    received_at: UtcDatetime
    alert: Alert


IncidentChange = Literal["opened", "resolved", "reopened"]


class IncidentNotice(Message):
    """A change of an incident that matters to its group, as of the event at `version`.
    `attached` counts the incident's `AlertAttached` events up to that event."""

    kind: Literal["incident"] = "incident"
    group_key: str
    incident_id: UUID
    change: IncidentChange
    version: int = Field(ge=1)
    attached: int = Field(ge=0)


Notice = Annotated[AlertNotice | IncidentNotice, Field(discriminator="kind")]
NOTICE_ADAPTER: TypeAdapter[AlertNotice | IncidentNotice] = TypeAdapter(Notice)


def alert_notice(alert: Alert, received_at, intake: IntakeSettings) -> AlertNotice:
    """The notice for `alert`, with its fingerprint and group worked out."""
    return AlertNotice(group_key=group_key(alert.labels, intake), fingerprint=fingerprint(alert),
                       received_at=received_at, alert=alert)
