"""Confirming a root cause over HTTP, and seeing it on the incident, the stream, the
scorecard and the postmortem.

Correlation runs are fed as the worker's agent sends them, with typed hypotheses the
test chooses (`runs.py`), so what the scorecard must say is known exactly.
"""

from __future__ import annotations

import statistics
import uuid
from datetime import datetime

import httpx
import pytest

from harness.waiting import wait_for_async
from runs import feed_run, suspect
from sse_client import open_stream
from stack import Stack

pytestmark = pytest.mark.timeout(300)


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


async def open_incident(api: httpx.AsyncClient, service: str) -> str:
    opened = await api.post("/v1/incidents", json={"title": f"{service} 5xx", "service": service, "severity": "high"})
    assert opened.status_code == 201, opened.text
    return opened.json()["id"]


async def run_completed(api: httpx.AsyncClient, incident: str, run: uuid.UUID) -> dict | None:
    runs = (await api.get(f"/v1/incidents/{incident}/correlation")).json()
    return next((r for r in runs if r["run_id"] == str(run) and r["state"] == "completed"), None)


async def confirm(api: httpx.AsyncClient, incident: str, body: dict) -> dict:
    answer = await api.post(f"/v1/incidents/{incident}/root-cause", json=body)
    assert answer.status_code == 200, answer.text
    return answer.json()


async def scored(api: httpx.AsyncClient, service: str, n: int) -> dict | None:
    card = (await api.get("/v1/scorecard", params={"service": service})).json()
    return card if card["n"] == n else None


async def test_a_confirmed_cause_is_on_the_incident_the_stream_the_scorecard_and_the_postmortem(stack: Stack) -> None:
    service = unique("checkout")
    db, payments = unique("payments-db"), unique("payments")
    async with stack.client("responder", sub="alice") as alice, stack.client("responder", sub="bob") as bob, \
            stack.client("viewer", sub="vic") as viewer, open_stream(alice, service=service) as stream:
        incident = await open_incident(alice, service)
        run = await feed_run(stack, incident, [
            suspect(1, db, "latency", 0.87, [db, payments, service], "p95 latency 40 ms → 900 ms"),
            suspect(2, payments, "errors", 0.6, [payments, service]),
            suspect(3, service, "errors", 0.5, [service])])
        completed = await wait_for_async(lambda: run_completed(alice, incident, run), timeout=60,
                                         message="the fed run completed")
        assert [h["service"] for h in completed["hypotheses"]] == [db, payments, service]

        # Refused: unknown incident, a viewer, malformed bodies (naming the field).
        assert (await alice.post(f"/v1/incidents/{uuid.uuid4()}/root-cause", json={"service": db})).status_code == 404
        refused = await viewer.post(f"/v1/incidents/{incident}/root-cause", json={"service": db})
        assert refused.status_code == 403 and refused.json()["code"] == "forbidden"
        for body, field in (({}, "service"), ({"service": ""}, "service"), ({"service": "   "}, "service"),
                            ({"service": db, "signal": "x" * 101}, "signal"), ({"service": 7}, "service"),
                            ({"service": db, "note": "a\x00b"}, "note"), ({"service": db, "by": "mallory"}, "by")):
            bad = await alice.post(f"/v1/incidents/{incident}/root-cause", json=body)
            assert bad.status_code == 422, (body, bad.text)
            assert bad.headers["content-type"].startswith("application/problem+json")
            assert field in [e["field"] for e in bad.json()["errors"]], (body, bad.json())

        # Confirmed: 200 with the new version; the same cause again appends nothing.
        done = await confirm(alice, incident, {"service": db, "signal": "latency", "note": "pool exhausted"})
        assert done["id"] == incident and done["status"] == "investigating"  # the run moved it
        again = await confirm(bob, incident, {"service": db, "signal": "latency", "note": "pool exhausted"})
        assert again["version"] == done["version"]

        message = await stream.until(lambda m: m.event == "RootCauseConfirmed", timeout=30)
        change = message[-1].json
        assert change["version"] == done["version"] and change["data"]["by"] == "alice"
        assert change["incident"]["root_cause"]["service"] == db

        shown = (await viewer.get(f"/v1/incidents/{incident}", params={"min_version": done["version"]})).json()
        assert shown["version"] == done["version"]
        cause = shown["root_cause"]
        assert (cause["service"], cause["signal"], cause["note"], cause["confirmed_by"], cause["version"]) == \
            (db, "latency", "pool exhausted", "alice", done["version"])
        timeline = (await viewer.get(f"/v1/incidents/{incident}/timeline")).json()
        assert [e["type"] for e in timeline].count("RootCauseConfirmed") == 1
        assert timeline[-1]["summary"] == f"Root cause confirmed by alice: {db} (latency). pool exhausted"
        assert timeline[-1]["actor"] == {"kind": "user", "id": "alice"}

        # A second incident: correlation had payments second, the cause was elsewhere; then
        # someone supersedes it with the service correlation ranked second.
        other = await open_incident(alice, service)
        other_run = await feed_run(stack, other, [suspect(1, db, "latency", 0.7, [db, payments, service]),
                                                  suspect(2, payments, "errors", 0.6, [payments, service])])
        await wait_for_async(lambda: run_completed(alice, other, other_run), timeout=60, message="the second run")
        await confirm(bob, other, {"service": unique("dns")})
        missed = await wait_for_async(lambda: scored(viewer, service, 2), timeout=30, message="two confirmed")
        assert (missed["top1"], missed["top3"]) == ({"hits": 1, "rate": 0.5}, {"hits": 1, "rate": 0.5})
        assert missed["time_to_first_hypothesis"]["named"] == 1
        # Resolved, then the cause is corrected: confirming works on any status.
        resolved = await alice.post(f"/v1/incidents/{other}/status", json={"to": "resolved"})
        assert resolved.status_code == 200, resolved.text
        superseded = await confirm(alice, other, {"service": payments, "signal": "errors"})
        assert superseded["status"] == "resolved" and superseded["version"] == resolved.json()["version"] + 1

        async def second_supersedes() -> dict | None:
            card = await scored(viewer, service, 2)
            return card if card and card["incidents"][0]["root_cause"]["version"] == superseded["version"] else None

        card = await wait_for_async(second_supersedes, timeout=30, message="the superseding confirmation scored")

    assert card["n"] == 2 and card["counted_run"].startswith("the latest correlation run completed before")
    assert card["top1"] == {"hits": 1, "rate": 0.5} and card["top3"] == {"hits": 2, "rate": 1.0}
    newest, first = card["incidents"]
    assert (newest["incident_id"], newest["rank"], newest["top1"], newest["top3"]) == (other, 2, False, True)
    assert (first["incident_id"], first["rank"], first["top1"], first["top3"]) == (incident, 1, True, True)
    assert first["run_id"] == first["first_named_run_id"] == str(run)
    assert (first["root_cause"]["service"], first["service"], first["title"]) == (db, service, f"{service} 5xx")
    for item, completed_at in ((first, completed["completed_at"]), (newest, None)):
        opened = datetime.fromisoformat(item["opened_at"])
        if completed_at is not None:
            expected = (datetime.fromisoformat(completed_at) - opened).total_seconds()
            assert item["time_to_first_hypothesis_s"] == pytest.approx(expected, abs=1e-3)
        assert item["time_to_first_hypothesis_s"] > 0
    times = [i["time_to_first_hypothesis_s"] for i in card["incidents"]]
    assert card["time_to_first_hypothesis"] == {"named": 2, "never_named": 0,
                                                "median_s": pytest.approx(statistics.median(times), abs=1e-6)}

    async with stack.client("viewer", sub="vic") as viewer:
        everyone = (await viewer.get("/v1/scorecard", params={"limit": 1})).json()
        assert everyone["n"] >= 2 and len(everyone["incidents"]) == 1
        assert (await viewer.get("/v1/scorecard", params={"limit": 0})).status_code == 422
        markdown = (await viewer.get(f"/v1/incidents/{incident}/postmortem", headers={"Accept": "text/markdown"})).text
        document = (await viewer.get(f"/v1/incidents/{incident}/postmortem",
                                     headers={"Accept": "application/json"})).json()
    assert "## Root cause" in markdown and f"| Confirmed cause | **{db} (latency)** |" in markdown
    assert f"correlation had it first (top-1; run `{str(run)[:8]}`" in markdown
    assert f"| 1 | **{db}** (confirmed) | latency | {db} → {payments} → {service} | 0.87 |" in markdown
    assert f"**Root cause confirmed by alice: {db} (latency). pool exhausted**" in markdown
    cause = document["root_cause"]
    assert (cause["service"], cause["rank"], cause["top1"], cause["top3"], cause["run_id"]) == \
        (db, 1, True, True, str(run))
    assert cause["time_to_first_hypothesis_s"] == pytest.approx(first["time_to_first_hypothesis_s"], abs=1e-3)
    assert [h["service"] for h in document["hypotheses"]] == [db, payments, service]
