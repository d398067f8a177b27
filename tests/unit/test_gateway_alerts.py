"""Alert intake over HTTP, before anything is sent: bodies parsed and refused naming the
field, Alertmanager's payload read as Alertmanager sends it, dead letters attributed."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from fastapi.testclient import TestClient

from gateway.alerts import AlertmanagerPayload, from_alertmanager, parse_alerts
from gateway.app import create_app
from gateway.auth import mint_token
from gateway.dead_letters import source_topic
from gateway.problems import Problem
from foundation.settings import Settings

SECRET = "unit-test-secret-of-at-least-32-bytes!"

# A notification exactly as Alertmanager 0.25 posts it (one firing, one resolved alert).
ALERTMANAGER = {
    "receiver": "warroom",
    "status": "firing",
    "alerts": [
        {"status": "firing",
         "labels": {"alertname": "HighErrorRate", "service": "checkout", "severity": "critical"},
         "annotations": {"summary": "5xx above 5%"},
         "startsAt": "2024-05-01T12:00:00.123456789Z", "endsAt": "0001-01-01T00:00:00Z",
         "generatorURL": "http://prometheus:9090/graph?g0.expr=up", "fingerprint": "c2f2b4e3a1d0e9f8"},
        {"status": "resolved",
         "labels": {"alertname": "LatencyHigh", "service": "checkout"},
         "annotations": {}, "startsAt": "2024-05-01T11:00:00Z", "endsAt": "2024-05-01T11:30:00Z",
         "generatorURL": "", "fingerprint": "0a1b2c3d4e5f6a7b"},
    ],
    "groupLabels": {"alertname": "HighErrorRate"},
    "commonLabels": {"service": "checkout"},
    "commonAnnotations": {},
    "externalURL": "http://alertmanager:9093",
    "version": "4",
    "groupKey": "{}:{alertname=\"HighErrorRate\"}",
    "truncatedAlerts": 0,
}


@pytest.fixture(scope="module")
def settings() -> Settings:
    return Settings(auth={"jwt_secret": SECRET})


def client_for(settings: Settings, *roles: str) -> TestClient:
    app = create_app(settings)
    app.state.bus = object()  # validation fails before anything would be sent
    client = TestClient(app, raise_server_exceptions=False)
    client.headers["Authorization"] = f"Bearer {mint_token(settings, 'producer', roles)}"
    return client


def test_one_alert_or_a_list() -> None:
    one = {"status": "firing", "labels": {"service": "checkout"}, "starts_at": "2024-05-01T12:00:00Z"}
    assert len(parse_alerts(json.dumps(one).encode())) == 1
    assert len(parse_alerts(json.dumps([one, one]).encode())) == 2
    assert parse_alerts(b"[]") == []


@pytest.mark.parametrize(("body", "field"), [
    (b"{nope", "body"),
    (b"[" * 100_000, "body"),
    (b"\xff\xfe", "body"),
    (b"42", "body"),
    (json.dumps({"status": "firing", "labels": {}, "starts_at": "2024-05-01T12:00:00Z"}).encode(), "labels"),
    (json.dumps({"status": "burning", "labels": {"a": "b"}, "starts_at": "2024-05-01T12:00:00Z"}).encode(), "status"),
    (json.dumps({"status": "firing", "labels": {"a": "b"}, "starts_at": "2024-05-01T12:00:00"}).encode(), "starts_at"),
    (json.dumps([{"status": "firing", "labels": {"a": "b"}, "starts_at": "2024-05-01T12:00:00Z"},
                 {"status": "firing", "labels": {"a": 1}, "starts_at": "2024-05-01T12:00:00Z"}]).encode(), "1.labels.a"),
])
def test_a_malformed_body_is_refused_naming_the_field(body: bytes, field: str) -> None:
    with pytest.raises(Problem) as refused:
        parse_alerts(body)
    problem = refused.value
    assert problem.status == 422 and problem.code == "validation_error"
    assert field in [error["field"] for error in problem.extra["errors"]]


def test_alertmanager_alerts_keep_their_fingerprint_and_a_zero_end_means_none() -> None:
    payload = AlertmanagerPayload.model_validate(ALERTMANAGER)
    firing, resolved = (from_alertmanager(a, "alertmanager") for a in payload.alerts)
    assert (firing.fingerprint, firing.status, firing.ends_at, firing.source) == (
        "c2f2b4e3a1d0e9f8", "firing", None, "alertmanager")
    assert firing.starts_at.tzinfo is not None and firing.starts_at.year == 2024
    assert firing.annotations == {"summary": "5xx above 5%",
                                  "generatorURL": "http://prometheus:9090/graph?g0.expr=up"}
    assert resolved.status == "resolved" and resolved.ends_at == datetime(2024, 5, 1, 11, 30, tzinfo=UTC)
    assert resolved.annotations == {}


def test_alertmanager_fields_it_may_add_later_are_ignored() -> None:
    newer = {**ALERTMANAGER, "somethingNew": True,
             "alerts": [{**ALERTMANAGER["alerts"][0], "silencedBy": []}]}
    assert len(AlertmanagerPayload.model_validate(newer).alerts) == 1


@pytest.mark.parametrize(("change", "field"), [
    ({"version": "3"}, "version"),
    ({"alerts": [{**ALERTMANAGER["alerts"][0], "labels": {}}]}, "alerts.0.labels"),
    ({"alerts": [{**ALERTMANAGER["alerts"][0], "startsAt": "yesterday"}]}, "alerts.0.startsAt"),
    ({"alerts": [{**ALERTMANAGER["alerts"][0], "labels": {"service": "nul\x00"}}]}, "alerts.0.labels.service"),
])
def test_a_malformed_webhook_is_422_naming_the_field(settings: Settings, change: dict, field: str) -> None:
    response = client_for(settings, "ingest").post("/v1/alerts/alertmanager", json={**ALERTMANAGER, **change})
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert field in [error["field"] for error in response.json()["errors"]]


def test_a_malformed_alert_is_422_naming_the_field(settings: Settings) -> None:
    response = client_for(settings, "admin").post("/v1/alerts", content=b'{"status": "firing"}',
                                                  headers={"Content-Type": "application/json"})
    assert response.status_code == 422, response.text
    assert {"labels", "starts_at"} <= {error["field"] for error in response.json()["errors"]}


@pytest.mark.parametrize("roles", [("viewer",), ("responder",)])
def test_only_ingest_and_admin_may_post_alerts(settings: Settings, roles) -> None:
    client = client_for(settings, *roles)
    assert client.post("/v1/alerts", json=[]).status_code == 403
    assert client.post("/v1/alerts/alertmanager", json=ALERTMANAGER).status_code == 403
    assert TestClient(create_app(settings)).post("/v1/alerts", json=[]).status_code == 401


def test_dead_letters_are_counted_by_the_topic_they_came_from() -> None:
    assert source_topic([("warroom-reason", b"x"), ("warroom-source", b"warroom.alerts/2/17")], None) == "warroom.alerts"
    assert source_topic([], json.dumps({"topic": "warroom.events"}).encode()) == "warroom.events"
    assert source_topic((), b"not json") == "unknown"
