"""Strict input against the real server: types, resume positions, and bounded requests."""

from __future__ import annotations

import uuid

import httpx

from gateway.auth import mint_token


async def test_versions_are_json_integers_only(stack, responder: httpx.AsyncClient) -> None:
    opened = (await responder.post("/v1/incidents", json={
        "title": "strict", "service": f"strict-{uuid.uuid4().hex[:8]}", "severity": "low"})).json()
    for loose in ("1", True, 1.5):
        refused = await responder.post(f"/v1/incidents/{opened['id']}/status",
                                       json={"to": "mitigated", "expected_version": loose})
        assert refused.status_code == 422 and refused.json()["errors"][0]["field"] == "expected_version", loose
    # JSON Schema's integer (the OpenAPI the API publishes) includes 1.0: it is version 1.
    taken = await responder.post(f"/v1/incidents/{opened['id']}/status", json={"to": "mitigated", "expected_version": 1.0})
    assert taken.status_code == 200 and taken.json()["version"] == 2


async def test_a_resume_position_past_any_change_id_is_refused_alike(stack, responder: httpx.AsyncClient) -> None:
    for request in ({"headers": {"Last-Event-ID": str(2**63)}}, {"params": {"last_event_id": str(2**63)}}):
        refused = await responder.get("/v1/stream", **request)
        assert refused.status_code == 422, refused.text


def test_a_megabyte_token_is_refused_431_and_ten_megabytes_of_body_413(stack) -> None:
    signed = mint_token(stack.settings, "x" * 1_000_000, ["responder"])
    refused = httpx.get(f"{stack.base_url}/v1/incidents", headers={"Authorization": f"Bearer {signed}"}, timeout=30)
    assert refused.status_code == 431 and refused.json()["code"] == "too_large", refused.text
    headers = {**stack.auth("responder"), "Content-Type": "application/json"}
    body = b'{"title": "' + b"x" * 10_000_000 + b'"}'
    too_big = httpx.post(f"{stack.base_url}/v1/incidents", content=body, headers=headers, timeout=30)
    assert too_big.status_code == 413 and too_big.json()["code"] == "too_large", too_big.text

    def chunks():  # no Content-Length: refused once a megabyte has arrived
        for _ in range(640):
            yield b" " * 16_384

    streamed = httpx.post(f"{stack.base_url}/v1/incidents", content=chunks(), headers=headers, timeout=30)
    assert streamed.status_code == 413, streamed.text
    assert httpx.get(f"{stack.base_url}/readyz", timeout=10).status_code == 200
