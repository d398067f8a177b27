"""SSE resume with Last-Event-ID: nothing missed, nothing twice; unknown positions reset."""

from __future__ import annotations

import uuid

import httpx

from sse_client import open_stream


async def test_resume_after_a_disconnect_misses_nothing(stack, responder: httpx.AsyncClient) -> None:
    service = f"svc-{uuid.uuid4().hex[:10]}"
    async with open_stream(responder, service=service) as stream:
        opened = (await responder.post("/v1/incidents", json={
            "title": "resume", "service": service, "severity": "low"})).json()
        incident = opened["id"]
        first = await stream.next()
        assert first.json["incident_id"] == incident
    last_seen = first.change_id

    # While nobody listens, the incident moves on.
    last_version = 1
    for n in range(12):
        note = await responder.post(f"/v1/incidents/{incident}/notes", json={"text": f"while away {n}"})
        assert note.status_code == 201, note.text
        last_version = note.json()["version"]

    async with open_stream(responder, service=service, resume_after=last_seen) as stream:
        missed = await stream.until(lambda m: m.json["version"] >= last_version)
        # And live again after the backlog, without a gap.
        live = await responder.post(f"/v1/incidents/{incident}/notes", json={"text": "back"})
        after = await stream.until(lambda m: m.json["version"] >= live.json()["version"])

    messages = missed + after
    ids = [m.change_id for m in messages]
    assert ids == sorted(set(ids)) and ids[0] > last_seen
    assert [m.json["version"] for m in messages] == list(range(2, live.json()["version"] + 1))

    # The query parameter works as the header does.
    async with open_stream(responder, incident=incident, last_event_id=last_seen) as s:
        again = await s.until(lambda m: m.json["version"] >= live.json()["version"])
    assert [m.change_id for m in again] == ids


async def test_a_position_the_feed_does_not_know_gets_a_reset(stack, responder: httpx.AsyncClient) -> None:
    async with open_stream(responder, resume_after=10**15) as stream:
        message = await stream.next()
    assert message.event == "reset"
    assert "newest_change_id" in message.json


async def test_the_stream_takes_a_token_in_the_query(stack) -> None:
    async with httpx.AsyncClient(base_url=stack.base_url, timeout=30) as anonymous:
        refused = await anonymous.get("/v1/stream")
        assert refused.status_code == 401
        async with open_stream(anonymous, access_token=stack.token("viewer")) as stream:
            assert stream.response.headers["content-type"].startswith("text/event-stream")
