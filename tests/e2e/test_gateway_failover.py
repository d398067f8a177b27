"""Gateways are interchangeable: kill -9 one under a stream, resume on another, miss nothing."""

from __future__ import annotations

import uuid

import httpx

from harness.waiting import wait_for
from sse_client import open_stream
from warroom.servers import free_port


def start_gateway(stack, name: str) -> str:
    port = free_port()
    server = stack.start(name, "gateway", env={"WARROOM_GATEWAY__PORT": str(port)})
    url = f"http://127.0.0.1:{port}"

    def ready() -> bool:
        assert server.alive(), server.log_tail()
        return httpx.get(f"{url}/readyz", timeout=3).status_code == 200

    wait_for(ready, timeout=60, interval=0.2, message=f"{name} /readyz")
    return url


async def test_a_client_resumes_on_another_gateway_after_kill_9(stack) -> None:
    doomed_url, other_url = start_gateway(stack, "gateway-doomed"), start_gateway(stack, "gateway-other")
    headers = stack.auth("responder", sub="failover")
    service = f"svc-{uuid.uuid4().hex[:10]}"
    async with httpx.AsyncClient(base_url=doomed_url, headers=headers, timeout=30) as doomed, \
            httpx.AsyncClient(base_url=other_url, headers=headers, timeout=30) as other:
        async with open_stream(doomed, service=service) as stream:
            opened = (await other.post("/v1/incidents", json={
                "title": "failover", "service": service, "severity": "high"})).json()
            incident = opened["id"]
            first = await stream.next()
            assert first.json["incident_id"] == incident
            stack.processes["gateway-doomed"].kill()
            # The stream ends with its gateway; meanwhile the incident moves on elsewhere.
            last = None
            for n in range(10):
                last = await other.post(f"/v1/incidents/{incident}/notes", json={"text": f"after the crash {n}"})
                assert last.status_code == 201, last.text
        async with open_stream(other, service=service, resume_after=first.change_id) as resumed:
            messages = await resumed.until(lambda m: m.json["version"] >= last.json()["version"])
    assert [m.json["version"] for m in messages] == list(range(2, last.json()["version"] + 1))
    ids = [m.change_id for m in messages]
    assert ids == sorted(set(ids)) and ids[0] > first.change_id
    stack.processes.pop("gateway-other").stop()
    stack.processes.pop("gateway-doomed").stop()
