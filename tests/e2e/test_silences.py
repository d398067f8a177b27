"""Silences end to end (SPEC §15): a silence created through the API swallows a matching
alert (no incident, recorded on the silence's stream) and only a matching one; expiring it
lets the next one through; bad matchers are refused naming the field."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import httpx

from harness.waiting import wait_for_async
from stack import MAINTENANCE_WINDOW, Stack


def alert(service: str, name: str = "DiskFull") -> dict:
    return {"status": "firing", "labels": {"alertname": name, "service": service, "severity": "critical"},
            "starts_at": datetime.now(UTC).isoformat()}


def in_an_hour() -> str:
    return (datetime.now(UTC) + timedelta(hours=1)).isoformat()


async def incidents_of(client: httpx.AsyncClient, service: str) -> list[dict]:
    answer = await client.get("/v1/incidents", params={"service": service})
    answer.raise_for_status()
    return answer.json()["items"]


async def test_a_silence_swallows_a_matching_alert_and_its_expiry_lets_the_next_through(
        stack: Stack, responder: httpx.AsyncClient) -> None:
    service, neighbour = f"silenced-{uuid.uuid4().hex[:8]}", f"loud-{uuid.uuid4().hex[:8]}"
    created = await responder.post("/v1/silences", json={
        "matchers": [{"label": "service", "op": "=", "value": service},
                     {"label": "alertname", "op": "=~", "value": "Disk.*"}],
        "ends_at": in_an_hour(), "comment": "disk migration"})
    assert created.status_code == 201, created.text
    silence = created.json()["id"]
    assert created.headers["Location"] == f"/v1/silences/{silence}"
    # Read-your-writes: listed at once, active.
    listed = (await responder.get("/v1/silences")).json()["silences"]
    (mine,) = [s for s in listed if s["id"] == silence]
    assert (mine["state"], mine["created_by"], mine["swallowed"]) == ("active", "alice", 0)

    async with stack.client("ingest", sub="pager") as ingest:
        disk = alert(service)
        for body in (disk, disk, alert(neighbour), alert(service, "CpuHot")):
            assert (await ingest.post("/v1/alerts", json=body)).status_code == 202

        async def swallowed() -> dict | None:
            answer = (await responder.get(f"/v1/silences/{silence}")).json()
            return answer if answer["swallowed"] >= 1 else None

        seen = await wait_for_async(swallowed, 60, 0.2, "the silence records the alert it swallowed")
        # The neighbour and the other alertname were not matched: each opens an incident.
        await wait_for_async(lambda: incidents_of(responder, neighbour), 60, 0.2, "the unmatched service's incident")
        (cpu,) = await wait_for_async(lambda: incidents_of(responder, service), 60, 0.2, "the unmatched alert's incident")
        assert seen["recent"][0]["alertname"] == "DiskFull"
        # The same alert sent twice is recorded once; it never reached the incident.
        assert (await responder.get(f"/v1/silences/{silence}")).json()["swallowed"] == 1
        assert seen["swallowed"] == 1
        events = (await responder.get(f"/v1/incidents/{cpu['id']}/events")).json()
        assert [e["data"]["alertname"] for e in events if e["type"] == "AlertAttached"] == ["CpuHot"]

        expired = await responder.delete(f"/v1/silences/{silence}")
        assert expired.status_code == 200, expired.text
        assert (await responder.get(f"/v1/silences/{silence}")).json()["state"] == "expired"
        assert all(s["id"] != silence for s in (await responder.get("/v1/silences")).json()["silences"])
        assert any(s["id"] == silence for s in
                   (await responder.get("/v1/silences", params={"expired": "true"})).json()["silences"])

        assert (await ingest.post("/v1/alerts", json=alert(service))).status_code == 202

        async def attached() -> list | None:
            events = (await responder.get(f"/v1/incidents/{cpu['id']}/events")).json()
            names = [e["data"]["alertname"] for e in events if e["type"] == "AlertAttached"]
            return names if "DiskFull" in names else None

        await wait_for_async(attached, 60, 0.2, "after expiry the alert joins the service's incident")

    # The silence's own stream holds the audit: created, swallowed once, expired.
    timeline = (await responder.get(f"/v1/silences/{silence}")).json()
    assert timeline["expired_by"] == "alice" and timeline["version"] == 3


async def test_bad_silences_are_refused_naming_the_field(stack: Stack, responder: httpx.AsyncClient) -> None:
    cases = [
        ({"matchers": [{"label": "service", "op": "=~", "value": "db("}], "ends_at": in_an_hour(), "comment": "x"},
         "matchers.0"),
        ({"matchers": [{"label": "service", "op": "~=", "value": "db"}], "ends_at": in_an_hour(), "comment": "x"},
         "matchers.0.op"),
        ({"matchers": [], "ends_at": in_an_hour(), "comment": "x"}, "matchers"),
        ({"matchers": [{"label": "service", "op": "=", "value": "db"}], "ends_at": "tomorrow", "comment": "x"},
         "ends_at"),
        ({"matchers": [{"label": "service", "op": "=", "value": "db"}],
          "ends_at": (datetime.now(UTC) - timedelta(minutes=1)).isoformat(), "comment": "x"}, "ends_at"),
    ]
    for body, field in cases:
        refused = await responder.post("/v1/silences", json=body)
        assert refused.status_code == 422, (body, refused.text)
        assert refused.headers["content-type"].startswith("application/problem+json")
        fields = [e["field"] for e in refused.json()["errors"]]
        assert any(f.startswith(field) for f in fields), (field, fields)
    missing = await responder.delete(f"/v1/silences/{uuid.uuid4()}")
    assert missing.status_code == 404, missing.text
    async with stack.client("viewer") as viewer:
        body = {"matchers": [{"label": "service", "op": "=", "value": "db"}], "ends_at": in_an_hour(), "comment": "x"}
        assert (await viewer.post("/v1/silences", json=body)).status_code == 403
        assert (await viewer.get("/v1/silences")).status_code == 200


async def test_a_maintenance_window_from_settings_swallows_what_it_matches(stack: Stack, responder: httpx.AsyncClient) -> None:
    window = MAINTENANCE_WINDOW["name"]
    listed = (await responder.get("/v1/silences")).json()["silences"]
    (mine,) = [s for s in listed if s["window"] == window]
    assert (mine["kind"], mine["state"]) == ("maintenance", "active")
    before = mine["swallowed"]
    name = f"Backup{uuid.uuid4().hex[:8]}"
    async with stack.client("ingest", sub="pager") as ingest:
        assert (await ingest.post("/v1/alerts", json=alert("maintained-e2e", name))).status_code == 202

    async def recorded() -> dict | None:
        answer = (await responder.get(f"/v1/silences/{mine['id']}")).json()
        return answer if any(a["alertname"] == name for a in answer["recent"]) else None

    seen = await wait_for_async(recorded, 60, 0.2, "the window records the alert it swallowed")
    assert seen["swallowed"] == before + 1
    assert await incidents_of(responder, "maintained-e2e") == []
    expire = await responder.delete(f"/v1/silences/{mine['id']}")
    assert expire.status_code == 422 and expire.json()["errors"][0]["field"] == "id", expire.text
