"""Strict input at the gateway's door: typed fields take only their type, both ways of
resuming a stream follow one rule, and oversized headers and bodies are refused (413/431)
before anything reads them."""

from __future__ import annotations

from uuid import uuid4

import pytest
from fastapi.testclient import TestClient

from gateway.app import create_app
from gateway.auth import mint_token
from foundation.settings import Settings

SECRET = "unit-test-secret-of-at-least-32-bytes!"


class Untouchable:
    """Stands in for what the lifespan connects: touching it fails the test."""

    def __getattr__(self, name: str):
        raise AssertionError(f"the request got as far as using {name!r}")


@pytest.fixture(scope="module")
def settings() -> Settings:
    return Settings(auth={"jwt_secret": SECRET}, gateway={"max_header_bytes": 8192, "max_body_bytes": 65536,
                                                          "max_alert_body_bytes": 200_000})


@pytest.fixture(scope="module")
def client(settings: Settings) -> TestClient:
    app = create_app(settings)
    app.state.bus = app.state.pool = app.state.feed = app.state.event_log = Untouchable()
    client = TestClient(app, raise_server_exceptions=True)
    client.headers["Authorization"] = f"Bearer {mint_token(settings, 'r', ['responder', 'ingest'])}"
    return client


@pytest.mark.parametrize("path, body", [
    ("status", {"to": "mitigated", "expected_version": "1"}),
    ("status", {"to": "mitigated", "expected_version": True}),
    ("status", {"to": "mitigated", "expected_version": 1.5}),
    ("severity", {"severity": "low", "expected_version": "3"}),
    ("severity", {"severity": "low", "expected_version": False}),
])
def test_a_version_must_be_a_json_integer(client: TestClient, path: str, body: dict) -> None:
    response = client.post(f"/v1/incidents/{uuid4()}/{path}", json=body)
    assert response.status_code == 422, response.text
    assert [error["field"] for error in response.json()["errors"]] == ["expected_version"]


@pytest.mark.parametrize("value", ["1700000000", "9.5e-54", "2026-01-02T03:04:05", "yesterday"])
def test_an_instant_in_a_query_is_rfc_3339_with_an_offset_never_a_number(client: TestClient, value: str) -> None:
    response = client.get("/v1/topology", params={"at": value})
    assert response.status_code == 422, response.text
    assert [error["field"] for error in response.json()["errors"]] == ["at"]


def test_an_alertmanager_count_must_be_a_json_integer(client: TestClient) -> None:
    payload = {"version": "4", "groupKey": "g", "status": "firing", "receiver": "warroom", "truncatedAlerts": "0",
               "alerts": []}
    response = client.post("/v1/alerts/alertmanager", json=payload)
    assert response.status_code == 422 and response.json()["errors"][0]["field"] == "truncatedAlerts"


@pytest.mark.parametrize("value", [str(2**63), "-1", "12abc", "0x10"])
def test_last_event_id_is_refused_alike_as_header_and_as_query(client: TestClient, value: str) -> None:
    as_header = client.get("/v1/stream", headers={"Last-Event-ID": value})
    as_query = client.get("/v1/stream", params={"last_event_id": value})
    assert as_header.status_code == as_query.status_code == 422, (as_header.text, as_query.text)
    assert as_header.json()["errors"][0]["field"] == "Last-Event-ID"
    assert as_query.json()["errors"][0]["field"] == "last_event_id"


def test_headers_over_the_limit_are_refused_431_before_the_token_is_read(client: TestClient) -> None:
    huge_token = "x" * 1_000_000  # never verified: a signed one would cost as much to check
    response = client.get("/v1/incidents", headers={"Authorization": f"Bearer {huge_token}"})
    assert response.status_code == 431, response.text
    problem = response.json()
    assert problem["code"] == "too_large" and "authorization" in problem["detail"]
    assert response.headers["content-type"] == "application/problem+json"
    # Many small headers count together, and so does a long query string.
    assert client.get("/v1/incidents", headers={f"x-{n}": "y" * 100 for n in range(100)}).status_code == 431
    assert client.get("/v1/stream", params={"access_token": "t" * 9000}).status_code == 431


def test_a_body_over_the_limit_is_refused_413_by_its_length(client: TestClient) -> None:
    response = client.post("/v1/incidents", content=b"{" + b" " * 10_000_000 + b"}",
                           headers={"Content-Type": "application/json"})
    assert response.status_code == 413, response.text
    assert response.json()["code"] == "too_large"


def test_a_streamed_body_is_refused_413_once_it_passes_the_limit(client: TestClient) -> None:
    def chunks():  # no Content-Length: only counting what arrives can tell
        for _ in range(1000):
            yield b" " * 16_384

    response = client.post("/v1/incidents/" + str(uuid4()) + "/notes", content=chunks(),
                           headers={"Content-Type": "application/json"})
    assert response.status_code == 413, response.text
    assert response.json()["code"] == "too_large"


def test_the_alert_intake_takes_larger_bodies_up_to_its_own_limit(client: TestClient) -> None:
    alerts = b"[" + b",".join([b'{"status": "firing"}'] * 5000) + b"]"  # ~100 KB: over 64 KiB, within 200 KB
    response = client.post("/v1/alerts", content=alerts, headers={"Content-Type": "application/json"})
    assert response.status_code == 422, response.text  # read, parsed, and refused for what it says
    over = client.post("/v1/alerts", content=b"[" + b" " * 300_000 + b"]",
                       headers={"Content-Type": "application/json"})
    assert over.status_code == 413
