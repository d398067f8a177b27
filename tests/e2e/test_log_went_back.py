"""A broker that comes back with less log than the read models reflect (SPEC §13): it is
noticed (`/readyz` 503, the API refuses to serve what no longer matches), and healed
(read models rebuilt to match the log there is, SSE clients get `event: reset`)."""

from __future__ import annotations

import asyncio
import uuid

import httpx

from harness.servers import come_back_empty
from harness.waiting import wait_for_async
from sse_client import open_stream
from stack import start_stack
from foundation.topics import ensure_topics


async def status(stack, path: str) -> int:
    async with httpx.AsyncClient(base_url=stack.base_url, headers=stack.auth("viewer"), timeout=15) as client:
        return (await client.get(path)).status_code


async def until_status(stack, path: str, code: int, message: str) -> None:
    await wait_for_async(lambda: status_is(stack, path, code), timeout=90, interval=0.2, message=message)


async def status_is(stack, path: str, code: int) -> bool:
    return await status(stack, path) == code


async def test_a_broker_that_comes_back_empty_is_noticed_then_healed(own_kafka, postgres, tmp_path) -> None:
    # The default for a deployment: refuse, until a person decides.
    stack = await asyncio.to_thread(start_stack, own_kafka.bootstrap, postgres.dsn, tmp_path)
    try:
        service = f"gone-{uuid.uuid4().hex[:8]}"
        async with stack.client("responder") as client, open_stream(client, service=service) as stream:
            old = (await client.post("/v1/incidents", json={"title": "before", "service": service,
                                                             "severity": "low"})).json()
            for n in range(3):
                assert (await client.post(f"/v1/incidents/{old['id']}/notes", json={"text": f"n{n}"})).status_code == 201
            assert (await stream.next()).json["incident_id"] == old["id"]

            await asyncio.to_thread(come_back_empty, own_kafka)
            await ensure_topics(stack.settings)  # what `warroom up` does after restarting its broker
            # The worker stops by itself: its state came from the log that is gone.
            await wait_for_async(lambda: not stack.processes["worker"].alive(), timeout=60,
                                 message="the worker stopping")
            stack.start("worker", "worker")
            await until_status(stack, "/readyz", 503, "/readyz noticing")
            ready = (await client.get("/readyz")).json()
            assert "went back" in ready["failed"]["log"]
            for path in (f"/v1/incidents/{old['id']}", f"/v1/incidents/{old['id']}/events",
                         f"/v1/incidents/{old['id']}/audit", "/v1/incidents"):
                assert await status(stack, path) == 503, path

            # Healing, as a person would decide (and `warroom up` does by itself): rebuild.
            stack.start("projector", "projector", env={"WARROOM_PROJECTOR__ON_LOG_RESET": "rebuild"})
            reset = await stream.until(lambda m: m.event == "reset", timeout=120)
            assert "went back" in reset[-1].json["reason"]
            await until_status(stack, "/readyz", 200, "ready again")
            # The read models match the log there is: the old incident is not in it.
            assert await status(stack, f"/v1/incidents/{old['id']}") == 404

            async def opened() -> httpx.Response | None:
                # Until the projector has joined its group again an answer may be "behind";
                # the same key makes every try the same incident.
                answer = await client.post("/v1/incidents", headers={"Idempotency-Key": f"after-{service}"},
                                           json={"title": "after", "service": service, "severity": "high"})
                return answer if answer.status_code == 201 and "warroom-read-model" not in answer.headers else None

            new = (await wait_for_async(opened, timeout=120, interval=0.5, message="a new incident, readable")).json()
            got = await client.get(f"/v1/incidents/{new['id']}")
            assert got.status_code == 200 and got.json()["title"] == "after" and got.json()["version"] == 1
            events = (await client.get(f"/v1/incidents/{new['id']}/events")).json()
            assert [(e["incident_id"], e["version"]) for e in events] == [(new["id"], 1)]
            streamed = await stream.until(lambda m: m.json.get("incident_id") == new["id"], timeout=60)
            assert streamed[-1].event == "IncidentOpened"
            assert (await client.get("/v1/incidents", params={"service": service})).json()["items"][0]["id"] == new["id"]
        # A client resuming from before the reset is told to refetch as well.
        async with stack.client("viewer") as viewer, open_stream(viewer, resume_after=1) as resumed:
            assert (await resumed.next()).event == "reset"
    except BaseException:
        print(stack.logs())
        raise
    finally:
        await asyncio.to_thread(stack.stop)
