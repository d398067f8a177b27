"""A command's 2xx means the read models this gateway serves already show it (SPEC §13,
Consistency): a GET right after the answer never returns 404 or an older version."""

from __future__ import annotations

import re
import uuid

import httpx

from harness.waiting import wait_for_async

BEHIND = "warroom-read-model"


def unique_service() -> str:
    return f"ryw-{uuid.uuid4().hex[:10]}"


def command(n: int, version: int) -> tuple[str, dict | None]:
    """The n-th of a varied run of commands, each of which appends one event."""
    match n % 4:
        case 0:
            return "notes", {"text": f"note {n}"}
        case 1:
            return "severity", {"severity": "high" if n % 8 == 1 else "low", "expected_version": version}
        case 2:
            return "status", {"to": "mitigated", "expected_version": version}
        case _:
            return "status", {"to": "investigating", "reason": f"regressed {n}"}


async def test_a_hundred_commands_in_a_row_are_each_readable_at_once(stack, responder: httpx.AsyncClient) -> None:
    opened = await responder.post("/v1/incidents", json={
        "title": "read your writes", "service": unique_service(), "severity": "medium"})
    assert opened.status_code == 201 and BEHIND not in opened.headers, opened.text
    location = opened.headers["location"]
    # The Location, its events read from the log and its audit: all there at once.
    for path in (location, f"{location}/events", f"{location}/audit", f"{location}/timeline"):
        read = await responder.get(path)
        assert read.status_code == 200, (path, read.text)
    assert (await responder.get(location)).json()["version"] == 1
    assert (await responder.get(f"{location}/audit")).json()["events"] == 1

    version = 1
    acked = await responder.post(f"{location}/acknowledge")
    assert acked.status_code == 200 and BEHIND not in acked.headers, acked.text
    version = acked.json()["version"]
    assert (await responder.get(location)).json()["acknowledged_at"] is not None
    for n in range(98):
        path, body = command(n, version)
        answered = await responder.post(f"{location}/{path}", json=body)
        assert answered.status_code in (200, 201), (n, answered.text)
        assert BEHIND not in answered.headers, n
        assert answered.json()["version"] == version + 1
        version = answered.json()["version"]
        read = await responder.get(location)
        assert read.status_code == 200 and read.json()["version"] == version, (n, read.text)
        if path == "notes":
            timeline = (await responder.get(f"{location}/timeline", params={"after_version": version - 1})).json()
            assert [entry["type"] for entry in timeline] == ["NoteAdded"]
    assert version == 100
    events = (await responder.get(f"{location}/events")).json()
    assert [e["version"] for e in events] == list(range(1, 101))


async def test_an_idempotent_repeat_is_readable_at_once_too(stack, responder: httpx.AsyncClient) -> None:
    key = f"ryw-{uuid.uuid4()}"
    body = {"title": "same key", "service": unique_service(), "severity": "low"}
    first = await responder.post("/v1/incidents", json=body, headers={"Idempotency-Key": key})
    again = await responder.post("/v1/incidents", json=body, headers={"Idempotency-Key": key})
    assert first.status_code == again.status_code == 201
    assert again.headers.get("idempotent-replayed") == "true" and BEHIND not in again.headers
    assert (await responder.get(again.headers["location"])).json()["version"] == 1


async def test_a_projector_slower_than_the_bound_is_said_behind(stack, responder: httpx.AsyncClient) -> None:
    opened = await responder.post("/v1/incidents", json={
        "title": "projector away", "service": unique_service(), "severity": "low"})
    location = opened.headers["location"]
    stack.processes["projector"].stop()
    try:
        note = await responder.post(f"{location}/notes", json={"text": "while the projector is away"})
        # Still answered (the log has it), after the bounded wait, and says so.
        assert note.status_code == 201 and note.headers[BEHIND] == "behind", note.text
        assert (await responder.get(location)).json()["version"] == 1
    finally:
        stack.start("projector", "projector")

    async def caught_up() -> bool:
        read = await responder.get(location, params={"min_version": 2})
        return read.status_code == 200 and read.json()["version"] == 2

    await wait_for_async(caught_up, timeout=120, interval=0.2, message="the restarted projector catching up")
    metrics = httpx.get(f"{stack.base_url}/metrics", timeout=10).text
    behind = re.search(r"^warroom_read_model_behind_total (\S+)$", metrics, re.M)
    assert behind and float(behind.group(1)) >= 1
