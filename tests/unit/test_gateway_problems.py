"""Errors render as RFC 9457 problem+json with a machine code, and name bad fields."""

from __future__ import annotations

from uuid import uuid4

import pytest
from fastapi.testclient import TestClient

from contracts import CommandOutcome, Status
from gateway.app import create_app
from gateway.auth import mint_token
from gateway.commands import rejection as _rejection
from gateway.problems import Problem
from foundation.settings import Settings

SECRET = "unit-test-secret-of-at-least-32-bytes!"


@pytest.fixture(scope="module")
def settings() -> Settings:
    return Settings(auth={"jwt_secret": SECRET})


@pytest.fixture(scope="module")
def client(settings: Settings) -> TestClient:
    app = create_app(settings)
    app.state.bus = object()  # validation fails before anything would be sent
    client = TestClient(app, raise_server_exceptions=False)
    client.headers["Authorization"] = f"Bearer {mint_token(settings, 'r', ['responder'])}"
    return client


def test_a_problem_has_the_rfc_9457_members() -> None:
    body = Problem(409, "version_conflict", "expected 3, is 4", current_status="open", current_version=4).body()
    assert body == {
        "type": "https://warroom.dev/problems/version-conflict", "title": "Version conflict",
        "status": 409, "detail": "expected 3, is 4", "code": "version_conflict",
        "current_status": "open", "current_version": 4,
    }


def test_validation_errors_are_422_and_name_each_field(client: TestClient) -> None:
    response = client.post("/v1/incidents", json={"title": "", "severity": "apocalyptic"})
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["code"] == "validation_error"
    fields = {error["field"] for error in body["errors"]}
    assert {"title", "service", "severity"} <= fields
    assert all(error["message"] for error in body["errors"])


@pytest.mark.parametrize("body", [
    {"title": "db down", "service": "db", "severity": "high", "description": "nul \x00 inside"},
    {"title": "db down", "service": "db", "severity": "high", "labels": {"k": "\ud800"}},
    {"title": "db down", "service": "db", "severity": "high", "unknown": 1},
])
def test_what_the_log_cannot_hold_is_refused_at_the_door(client: TestClient, body: dict) -> None:
    import json

    raw = json.dumps(body)  # keeps the lone surrogate as an escape
    response = client.post("/v1/incidents", content=raw, headers={"Content-Type": "application/json"})
    assert response.status_code == 422, response.text


def test_malformed_json_is_422(client: TestClient) -> None:
    response = client.post("/v1/incidents", content=b"{not json", headers={"Content-Type": "application/json"})
    assert response.status_code == 422
    assert response.json()["code"] == "validation_error"


def test_bad_path_and_query_values_name_their_field(client: TestClient) -> None:
    response = client.post("/v1/incidents/not-a-uuid/acknowledge")
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "incident_id"
    response = client.post(f"/v1/incidents/{uuid4()}/status", json={"to": "open", "expected_version": -1})
    assert response.status_code == 422
    assert [e["field"] for e in response.json()["errors"]] == ["expected_version"]


def test_unknown_routes_and_methods_are_problems(client: TestClient) -> None:
    response = client.get("/v1/nothing-here")
    assert response.status_code == 404 and response.json()["code"] == "not_found"
    response = client.delete("/v1/incidents")
    assert response.status_code == 405 and response.headers["content-type"] == "application/problem+json"


@pytest.mark.parametrize(("code", "status"), [
    ("not_found", 404), ("invalid_transition", 409), ("version_conflict", 409), ("validation_error", 422),
])
def test_rejections_map_to_statuses(code: str, status: int) -> None:
    outcome = CommandOutcome(command_id=uuid4(), incident_id=uuid4(), accepted=False, code=code,
                             detail="because", field="reason", version=3, status=Status.RESOLVED)
    problem = _rejection(outcome)
    assert (problem.status, problem.code) == (status, code)
    body = problem.body()
    if status == 409:
        assert (body["current_status"], body["current_version"]) == ("resolved", 3)
    if status == 422:
        assert body["errors"] == [{"field": "reason", "message": "because"}]


def test_405_names_every_method_of_the_path(client: TestClient) -> None:
    response = client.request("OPTIONS", f"/v1/incidents/{uuid4()}/correlation")
    assert response.status_code == 405
    assert response.headers["allow"] == "GET, POST"


def test_an_unparseable_body_is_422(client: TestClient) -> None:
    response = client.post(f"/v1/incidents/{uuid4()}/notes", content=b"\xff\xfe\x00garbage",
                           headers={"Content-Type": "application/json"})
    assert response.status_code == 422
    assert response.json()["code"] == "validation_error"
