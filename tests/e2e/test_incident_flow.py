"""An incident through HTTP: opened, streamed in order, readable from the read models."""

from __future__ import annotations

import asyncio
import uuid

import httpx

from sse_client import open_stream


def unique_service() -> str:
    return f"svc-{uuid.uuid4().hex[:10]}"


async def test_open_is_streamed_in_order_and_lands_in_the_read_model(stack, responder: httpx.AsyncClient) -> None:
    service = unique_service()
    async with open_stream(responder, service=service) as stream:
        opened = await responder.post("/v1/incidents", json={
            "title": "checkout 5xx", "service": service, "severity": "high", "labels": {"team": "payments"}})
        assert opened.status_code == 201, opened.text
        body = opened.json()
        incident = body["id"]
        assert opened.headers["location"] == f"/v1/incidents/{incident}"
        assert body["status"] == "open" and body["version"] == 1

        first = await stream.next()
        assert first.event == "IncidentOpened"
        assert first.json["incident_id"] == incident and first.json["version"] == 1
        assert first.json["change_id"] == first.change_id
        assert first.json["incident"]["service"] == service

        acked = await responder.post(f"/v1/incidents/{incident}/acknowledge")
        assert acked.status_code == 200, acked.text
        moved = await responder.post(f"/v1/incidents/{incident}/status", json={"to": "mitigated", "reason": "rolled back"})
        assert moved.status_code == 200, moved.text
        assert moved.json()["status"] == "mitigated"
        final_version = moved.json()["version"]

        messages = [first, *await stream.until(lambda m: m.json["version"] == final_version)]

    # One message per event, in change_id order, versions without gaps.
    ids = [m.change_id for m in messages]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    assert [m.json["version"] for m in messages] == list(range(1, final_version + 1))
    types = [m.event for m in messages]
    assert types.index("IncidentAcknowledged") < len(types) - 1 and types[-1] == "StatusChanged"
    assert messages[-1].json["data"]["to"] == "mitigated"

    read = await responder.get(f"/v1/incidents/{incident}", params={"min_version": final_version})
    assert read.status_code == 200
    model = read.json()
    assert (model["status"], model["version"], model["service"]) == ("mitigated", final_version, service)
    assert model["acknowledged_at"] and model["mitigated_at"] and model["opened_at"]
    assert model["durations"]["time_to_acknowledge_s"] is not None
    assert model["labels"] == {"team": "payments"}
    assert model["opened_by"] == {"kind": "user", "id": "alice"}

    timeline = (await responder.get(f"/v1/incidents/{incident}/timeline")).json()
    assert [entry["version"] for entry in timeline] == list(range(1, final_version + 1))
    assert [entry["type"] for entry in timeline] == types

    events = await responder.get(f"/v1/incidents/{incident}/events")
    assert events.status_code == 200
    envelopes = events.json()
    assert [e["version"] for e in envelopes] == list(range(1, final_version + 1))
    assert [e["event_id"] for e in envelopes] == [entry["event_id"] for entry in timeline]
    assert envelopes[0]["prev_hash"] == "0" * 64
    assert all(later["prev_hash"] == earlier["hash"] for earlier, later in zip(envelopes, envelopes[1:]))
    assert envelopes[-1]["actor"] == {"kind": "user", "id": "alice"}

    listed = (await responder.get("/v1/incidents", params={"service": service})).json()
    assert [item["id"] for item in listed["items"]] == [incident]
    services = {s["name"]: s for s in (await responder.get("/v1/services")).json()}
    assert services[service]["status"] in ("degraded", "outage")


async def test_the_same_idempotency_key_opens_one_incident(stack, responder: httpx.AsyncClient) -> None:
    key = f"alert-{uuid.uuid4()}"
    body = {"title": "disk full", "service": unique_service(), "severity": "medium"}
    first = await responder.post("/v1/incidents", json=body, headers={"Idempotency-Key": key})
    again = await responder.post("/v1/incidents", json=body, headers={"Idempotency-Key": key})
    assert first.status_code == again.status_code == 201
    assert first.json()["id"] == again.json()["id"]
    assert again.headers.get("idempotent-replayed") == "true"
    # min_version makes any read of the incident wait for the projector to catch up.
    timeline = (await responder.get(f"/v1/incidents/{first.json()['id']}/timeline", params={"min_version": 1})).json()
    assert [e["type"] for e in timeline].count("IncidentOpened") == 1


async def test_commands_on_an_unknown_incident_are_404(stack, responder: httpx.AsyncClient) -> None:
    missing = uuid.uuid4()
    for path, body in [("acknowledge", None), ("status", {"to": "investigating"}),
                       ("severity", {"severity": "low"}), ("notes", {"text": "hello?"})]:
        response = await responder.post(f"/v1/incidents/{missing}/{path}", json=body)
        assert response.status_code == 404, (path, response.text)
        assert response.json()["code"] == "not_found"
    assert (await responder.get(f"/v1/incidents/{missing}")).status_code == 404


async def test_rejections_are_409_with_the_current_state(stack, responder: httpx.AsyncClient) -> None:
    opened = (await responder.post("/v1/incidents", json={
        "title": "queue backlog", "service": unique_service(), "severity": "low"})).json()
    incident = opened["id"]
    resolved = await responder.post(f"/v1/incidents/{incident}/status", json={"to": "resolved", "reason": "drained"})
    assert resolved.status_code == 200, resolved.text
    back = await responder.post(f"/v1/incidents/{incident}/status", json={"to": "open"})
    assert back.status_code == 409
    problem = back.json()
    assert problem["code"] == "invalid_transition"
    assert problem["current_status"] == "resolved" and problem["current_version"] >= resolved.json()["version"]
    stale = await responder.post(f"/v1/incidents/{incident}/severity", json={"severity": "high", "expected_version": 0})
    assert stale.status_code == 409 and stale.json()["code"] == "version_conflict"
    no_reason = await responder.post(f"/v1/incidents/{incident}/status", json={"to": "investigating"})
    assert no_reason.status_code == 422 and no_reason.json()["errors"][0]["field"] == "reason"


async def test_min_version_reads_your_own_writes(stack, responder: httpx.AsyncClient) -> None:
    opened = (await responder.post("/v1/incidents", json={
        "title": "latency", "service": unique_service(), "severity": "low"})).json()
    for n in range(5):
        note = await responder.post(f"/v1/incidents/{opened['id']}/notes", json={"text": f"note {n}"})
        assert note.status_code == 201, note.text
        version = note.json()["version"]
        read = await responder.get(f"/v1/incidents/{opened['id']}", params={"min_version": version})
        assert read.status_code == 200 and read.json()["version"] >= version


async def test_listing_pages_newest_first_with_a_cursor(stack, responder: httpx.AsyncClient) -> None:
    service = unique_service()
    ids = []
    for n in range(5):
        opened = await responder.post("/v1/incidents", json={"title": f"t{n}", "service": service, "severity": "low"})
        ids.append(opened.json()["id"])
    await asyncio.gather(*(responder.get(f"/v1/incidents/{i}", params={"min_version": 1}) for i in ids))
    seen, cursor = [], None
    while True:
        params = {"service": service, "limit": 2, **({"cursor": cursor} if cursor else {})}
        page = (await responder.get("/v1/incidents", params=params)).json()
        seen += [item["id"] for item in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == list(reversed(ids))
    bad = await responder.get("/v1/incidents", params={"cursor": "garbage"})
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "cursor"


async def test_a_correlation_run_can_be_requested_and_followed(stack, responder: httpx.AsyncClient) -> None:
    from harness.waiting import wait_for_async

    opened = (await responder.post("/v1/incidents", json={
        "title": "errors", "service": unique_service(), "severity": "high"})).json()
    requested = await responder.post(f"/v1/incidents/{opened['id']}/correlation")
    assert requested.status_code == 202, requested.text
    run_id = requested.json()["run_id"]

    async def listed() -> bool:
        runs = (await responder.get(f"/v1/incidents/{opened['id']}/correlation", params={"min_version": 1})).json()
        return any(run["run_id"] == run_id for run in runs)

    await wait_for_async(listed, timeout=30, interval=0.2, message="the requested run in the read model")
    missing = await responder.post(f"/v1/incidents/{uuid.uuid4()}/correlation")
    assert missing.status_code == 404
