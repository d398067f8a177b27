"""Alert intake over HTTP (SPEC §5): producers post alerts, the gateway puts them on the
alerts topic exactly as a Kafka producer would, and answers 202 once the broker has them.

`POST /v1/alerts` takes one alert or a list (`contracts.Alert`); `POST /v1/alerts/alertmanager`
takes Alertmanager's webhook payload (version 4) as Alertmanager sends it. Both need the
`ingest` role. Each alert is keyed by its group key, so the worker takes it in where it
arrives. `GET /v1/incidents/{id}/alerts` reads the alerts read model.
"""

from __future__ import annotations

import asyncio
import json
from datetime import datetime
from typing import Any, Literal

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from contracts.alerts import Alert
from contracts.common import UtcDatetime
from gateway.auth import Ingest, User, Viewer
from gateway.dead_letters import dead_letter_count
from gateway.deps import BusDep, PoolDep, SettingsDep
from gateway.fields import MAX_INT4, NO_NUL, Labels, text, whole_number
from gateway.incidents.routes import KnownIncident
from gateway.problems import Problem, documented
from streams.alert_reading import group_key, refusal
from foundation.settings import Settings

router = APIRouter(tags=["alerts"], lifespan=dead_letter_count)

MAX_ALERTS = 10_000
"""Alerts per request; a producer with more sends several requests."""

GENERATOR_URL = "generatorURL"
ERRORS = documented(401, 403, 422, 503)


class Accepted(BaseModel):
    """How many alerts are on the alerts topic."""

    accepted: int


# -- Alertmanager's webhook payload, version 4 ----------------------------------------


class AlertmanagerAlert(BaseModel):
    """One alert of an Alertmanager notification. Fields Alertmanager may add later are ignored."""

    model_config = ConfigDict(extra="ignore")

    status: Literal["firing", "resolved"]
    labels: Labels = Field(min_length=1)
    annotations: Labels = Field(default_factory=dict)
    startsAt: UtcDatetime
    endsAt: UtcDatetime | None = None  # Alertmanager sends year 1 for "no end" (firing)
    generatorURL: text(0, 8_000) = ""
    fingerprint: text(0, 200) | None = None


class AlertmanagerPayload(BaseModel):
    """The body Alertmanager's webhook receiver posts."""

    model_config = ConfigDict(extra="ignore")

    version: Literal["4"]
    groupKey: str
    truncatedAlerts: whole_number(0, MAX_INT4) = 0
    status: Literal["firing", "resolved"]
    receiver: str
    groupLabels: dict[str, str] = Field(default_factory=dict)
    commonLabels: dict[str, str] = Field(default_factory=dict)
    commonAnnotations: dict[str, str] = Field(default_factory=dict)
    externalURL: str = ""
    alerts: list[AlertmanagerAlert] = Field(max_length=MAX_ALERTS)


def from_alertmanager(alert: AlertmanagerAlert, source: str) -> Alert:
    """The `contracts.Alert` for one Alertmanager alert: its fingerprint kept, a zero
    `endsAt` read as no end, and its generator URL kept as an annotation."""
    annotations = dict(alert.annotations)
    if alert.generatorURL and GENERATOR_URL not in annotations:
        annotations[GENERATOR_URL] = alert.generatorURL
    ends_at = alert.endsAt if alert.endsAt is not None and alert.endsAt.year > 1 else None
    return Alert(fingerprint=alert.fingerprint or None, status=alert.status, labels=dict(alert.labels),
                 annotations=annotations, starts_at=alert.startsAt, ends_at=ends_at, source=source)


# -- our own format -------------------------------------------------------------------

_ONE = TypeAdapter(Alert)


def _storable_text(schema: Any) -> Any:
    """`schema` documenting what `refusal` enforces: no text (key or value) holds a NUL."""
    if isinstance(schema, list):
        return [_storable_text(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    documented = {key: _storable_text(value) for key, value in schema.items()}
    if documented.get("type") == "string" and "format" not in documented and "enum" not in documented:
        documented["pattern"] = NO_NUL
    if documented.get("type") == "object" and isinstance(documented.get("additionalProperties"), dict):
        documented["propertyNames"] = {"pattern": NO_NUL}
    return documented


_ALERT_SCHEMA = _storable_text(Alert.model_json_schema())  # no nested models: it stands alone inline
_BODY_SCHEMA = {
    "description": "one alert, or a list of alerts",
    "required": True,
    "content": {"application/json": {"schema": {"anyOf": [
        _ALERT_SCHEMA, {"type": "array", "items": _ALERT_SCHEMA, "maxItems": MAX_ALERTS},
    ]}}},
}


def parse_alerts(body: bytes) -> list[Alert]:
    """One alert or a list of them from a request body; `Problem` 422 naming the field."""
    try:
        document: Any = json.loads(body)
    except (ValueError, RecursionError) as err:  # RecursionError: nested too deep to read
        raise Problem.invalid("body", f"not valid JSON: {err}") from None
    many = isinstance(document, list)
    if many and len(document) > MAX_ALERTS:
        raise Problem.invalid("body", f"at most {MAX_ALERTS} alerts per request")
    alerts = []
    for index, item in enumerate(document if many else [document]):
        prefix = [str(index)] if many else []
        try:
            alerts.append(_ONE.validate_python(item))
        except ValidationError as err:
            errors = [{"field": ".".join(prefix + [str(p) for p in problem["loc"]]) or "body",
                       "message": problem["msg"]} for problem in err.errors(include_url=False)]
            raise Problem(422, "validation_error", "; ".join(f"{e['field']}: {e['message']}" for e in errors),
                          errors=errors) from None
    return alerts


# -- routes ---------------------------------------------------------------------------


async def publish(bus: BusDep, settings: Settings, alerts: list[Alert], user: User) -> Accepted:
    """Put `alerts` on the alerts topic keyed by group; return once the broker has them all.

    Refuses (422) the whole request if any alert cannot be taken in, naming it."""
    intake = settings.intake
    for index, alert in enumerate(alerts):
        problem = refusal(alert, intake)
        if problem is not None:
            field = f"{index}.{problem[0]}" if len(alerts) > 1 else problem[0]
            raise Problem.invalid(field, problem[1])
    records = [(group_key(alert.labels, intake).encode(),
                (alert if alert.source else alert.model_copy(update={"source": user.sub})).model_dump_json().encode())
               for alert in alerts]
    limit = settings.kafka.max_input_bytes
    for index, (_, value) in enumerate(records):
        if len(value) > limit:
            raise Problem.invalid(str(index) if len(alerts) > 1 else "body",
                                  f"an alert may take {limit} bytes as JSON; this one takes {len(value)}")
    producer = bus.producer
    assert producer is not None, "the command bus is started by the lifespan"
    topic = settings.topics.name("alerts")
    try:
        async with asyncio.timeout(settings.gateway.command_timeout_s):
            acks = [await producer.send(topic, key=key, value=value) for key, value in records]
            await asyncio.gather(*acks)
    except TimeoutError:
        raise Problem.unavailable("Kafka did not acknowledge the alerts in time; send them again") from None
    return Accepted(accepted=len(alerts))


@router.post("/v1/alerts", status_code=202, response_model=Accepted, responses=ERRORS,
             openapi_extra={"requestBody": _BODY_SCHEMA},
             summary="Publish one alert or a list, as a producer would to the alerts topic")
async def post_alerts(request: Request, user: Ingest, bus: BusDep, settings: SettingsDep) -> Accepted:
    return await publish(bus, settings, parse_alerts(await request.body()), user)


@router.post("/v1/alerts/alertmanager", status_code=202, response_model=Accepted, responses=ERRORS,
             summary="Alertmanager webhook receiver (payload version 4)")
async def post_alertmanager(payload: AlertmanagerPayload, user: Ingest, bus: BusDep,
                            settings: SettingsDep) -> Accepted:
    alerts = [from_alertmanager(alert, user.sub) for alert in payload.alerts]
    return await publish(bus, settings, alerts, user)


# -- the alerts read model ------------------------------------------------------------

SELECT_ALERTS = """
select fingerprint, alertname, status, labels, annotations, first_seen, last_seen, resolved_at
from alerts where incident_id = $1
order by first_seen asc nulls last, fingerprint
"""


class IncidentAlert(BaseModel):
    """One alert attached to an incident, as the alerts read model holds it."""

    fingerprint: str
    alertname: str | None = None
    status: Literal["firing", "resolved"]
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)
    first_seen: datetime | None = None
    last_seen: datetime | None = None
    resolved_at: datetime | None = None


@router.get("/v1/incidents/{incident_id}/alerts", response_model=list[IncidentAlert],
            responses=documented(401, 403, 404, 422, 503), tags=["incidents"],
            summary="The alerts of an incident: status, first and last seen")
async def incident_alerts(_: Viewer, incident_id: KnownIncident, pool: PoolDep) -> list[IncidentAlert]:
    rows = await pool.fetch(SELECT_ALERTS, incident_id)
    return [IncidentAlert.model_validate({**dict(row), "labels": row["labels"] or {},
                                          "annotations": row["annotations"] or {}}) for row in rows]

