"""Readiness names what is not ready; liveness and metrics need nothing."""

from __future__ import annotations

from types import SimpleNamespace

from fastapi.testclient import TestClient

from gateway.app import create_app
from foundation.settings import Settings


class Pool:
    def __init__(self, error: Exception | None = None) -> None:
        self.error = error

    async def fetchval(self, query: str, timeout: float | None = None) -> int:
        if self.error:
            raise self.error
        return 1


class Client:
    def __init__(self, error: Exception | None = None) -> None:
        self.error = error

    async def fetch_all_metadata(self) -> object:
        if self.error:
            raise self.error
        return object()


def app_with(pool: Pool, kafka: Client, hearing: bool = True, feed: bool = True,
             log_problem: str | None = None) -> TestClient:
    app = create_app(Settings(auth={"jwt_secret": "x" * 40}))
    app.state.pool = pool
    app.state.bus = SimpleNamespace(producer=SimpleNamespace(client=kafka), hearing_outcomes=hearing)
    app.state.feed = SimpleNamespace(connected=feed)
    app.state.log_watch = SimpleNamespace(problem=log_problem)
    return TestClient(app)


def test_ready_when_everything_answers() -> None:
    response = app_with(Pool(), Client()).get("/readyz")
    assert response.status_code == 200
    assert response.json()["checks"] == {"postgres": "ok", "kafka": "ok", "outcomes": "ok", "change_feed": "ok",
                                         "log": "ok"}


def test_not_ready_names_each_failure() -> None:
    from aiokafka.errors import KafkaConnectionError

    client = app_with(Pool(OSError("connection refused")), Client(KafkaConnectionError("no broker")),
                      hearing=False, feed=False)
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["code"] == "unavailable"
    assert set(body["failed"]) == {"postgres", "kafka", "outcomes", "change_feed"}
    assert "connection refused" in body["failed"]["postgres"] and "no broker" in body["failed"]["kafka"]


def test_a_log_that_went_back_is_not_ready_and_refuses_the_api() -> None:
    client = app_with(Pool(), Client(), log_problem="partition 0 ends at 3, read up to 40")
    response = client.get("/readyz")
    assert response.status_code == 503
    assert set(response.json()["failed"]) == {"log"} and "ends at 3" in response.json()["failed"]["log"]
    refused = client.get("/v1/incidents")
    assert refused.status_code == 503 and refused.json()["code"] == "unavailable"
    assert "went back" in refused.json()["detail"] and refused.headers["retry-after"] == "2"
    assert client.get("/healthz").status_code == 200


def test_liveness_and_metrics_need_no_servers() -> None:
    client = app_with(Pool(), Client())
    assert client.get("/healthz").json() == {"status": "ok"}
    metrics = client.get("/metrics")
    assert metrics.status_code == 200 and "warroom_sse_clients" in metrics.text
