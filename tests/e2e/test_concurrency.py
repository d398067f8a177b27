"""N concurrent conflicting commands: exactly one wins, the rest are told why."""

from __future__ import annotations

import asyncio
import uuid

import httpx

ATTEMPTS = 5


async def test_twenty_concurrent_status_changes_with_one_expected_version(stack, responder: httpx.AsyncClient) -> None:
    opened = (await responder.post("/v1/incidents", json={
        "title": "race", "service": f"svc-{uuid.uuid4().hex[:8]}", "severity": "high"})).json()
    incident = opened["id"]
    seen = opened["version"]
    for _ in range(ATTEMPTS):
        current = (await responder.get(f"/v1/incidents/{incident}", params={"min_version": seen})).json()
        version = current["version"]
        target = "investigating" if current["status"] == "mitigated" else "mitigated"
        answers = await asyncio.gather(*(
            responder.post(f"/v1/incidents/{incident}/status", json={"to": target, "expected_version": version})
            for _ in range(20)))
        codes = sorted(a.status_code for a in answers)
        winners = [a for a in answers if a.status_code == 200]
        losers = [a for a in answers if a.status_code != 200]
        assert len(winners) <= 1, codes
        assert all(a.status_code == 409 and a.json()["code"] == "version_conflict" for a in losers), codes
        assert all(a.json()["current_version"] > version for a in losers)
        seen = max([version + 1] + [a.json()["current_version"] for a in losers])
        if winners:
            assert winners[0].json()["version"] == version + 1
            return
        # Nobody won: something else (the system, correlation) moved the incident first. Again.
    raise AssertionError(f"no attempt out of {ATTEMPTS} had a winner")
