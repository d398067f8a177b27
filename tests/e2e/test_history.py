"""Replay, time travel, audit and postmortems through the running stack.

- `warroom replay` switches the stack's read models while dashboards stream and
  readers read: nobody gets an error, an SSE client sees every change once and can
  resume across the switch.
- `GET .../state?as_of=T` says what the read model said at T.
- `GET .../audit` and `.../events` come from the log.
- `GET .../postmortem` of an incident that went from an alert to resolution, with a
  real Prometheus behind correlation; the document is written to `docs/` when
  WARROOM_POSTMORTEM_EXAMPLE names a file.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import httpx
import pytest

from harness.waiting import wait_for_async
from projections.history.postmortem_markdown import duration
from sse_client import Message, open_stream
from stack import REPO_ROOT, Stack, start_stack

pytestmark = pytest.mark.timeout(600)


def unique_service() -> str:
    return f"svc-{uuid.uuid4().hex[:10]}"


def replay_cli(stack: Stack, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "warroom", "replay", *args], cwd=REPO_ROOT, env=stack.env,
                          capture_output=True, text=True, timeout=300)


# --- replay while everything runs -----------------------------------------------------------


class Readers:
    """HTTP readers polling the read models as dashboards do; every answer is recorded."""

    def __init__(self, client: httpx.AsyncClient, service: str) -> None:
        self.client, self.service = client, service
        self.answers: list[tuple[float, int]] = []
        self.incidents: list[str] = []

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            listed = await self.client.get("/v1/incidents", params={"service": self.service})
            self.answers.append((time.monotonic(), listed.status_code))
            for path in [f"/v1/incidents/{i}" for i in self.incidents[-3:]] + \
                        [f"/v1/incidents/{i}/timeline" for i in self.incidents[-1:]]:
                # An incident just opened may not be projected yet: read your writes.
                response = await self.client.get(path, params={"min_version": 1})
                self.answers.append((time.monotonic(), response.status_code))
            await asyncio.sleep(0.02)


class Writer:
    """A responder opening incidents and moving them along; remembers each one's last version."""

    def __init__(self, client: httpx.AsyncClient, service: str, readers: Readers) -> None:
        self.client, self.service, self.readers = client, service, readers
        self.versions: dict[str, int] = {}
        self.accepted_at: list[float] = []

    async def one(self) -> None:
        opened = await self.client.post("/v1/incidents", json={"title": "replay under load", "service": self.service,
                                                               "severity": "medium"})
        assert opened.status_code == 201, opened.text
        incident = opened.json()["id"]
        self.readers.incidents.append(incident)
        self.versions[incident] = 1
        for path, body in (("acknowledge", None), ("status", {"to": "investigating"}),
                           ("notes", {"text": "looking"}), ("status", {"to": "mitigated"})):
            answer = await self.client.post(f"/v1/incidents/{incident}/{path}", json=body)
            assert answer.status_code in (200, 201), answer.text
            self.versions[incident] = answer.json()["version"]
            self.accepted_at.append(time.monotonic())

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            await self.one()

    def expected(self) -> set[tuple[str, int]]:
        return {(incident, v) for incident, last in self.versions.items() for v in range(1, last + 1)}


def pairs(messages: list[Message]) -> list[tuple[str, int]]:
    return [(m.json["incident_id"], m.json["version"]) for m in messages]


async def test_readers_and_streams_are_served_through_a_replay_and_its_switch(stack: Stack) -> None:
    service = unique_service()
    async with stack.client("responder", sub="alice") as client, open_stream(client, service=service) as stream:
        readers, stop = Readers(client, service), asyncio.Event()
        writer = Writer(client, service, readers)
        for _ in range(10):
            await writer.one()
        background = [asyncio.create_task(readers.run(stop)), asyncio.create_task(writer.run(stop))]
        try:
            started = time.monotonic()
            done = await asyncio.to_thread(replay_cli, stack, "--json", "--jobs", "2")
            switched_at = time.monotonic()
            assert done.returncode == 0, done.stdout + done.stderr
            summary = json.loads(done.stdout)
            assert summary["switched"] and summary["valid"], summary
            # The stack goes on on the rebuilt schema: more commands, more changes.
            await wait_for_async(lambda: sum(t > switched_at for t in writer.accepted_at) >= 12, timeout=60,
                                 message="commands accepted after the switch")
        finally:
            stop.set()
            await asyncio.gather(*background)
        stack.check_alive()

        expected = writer.expected()
        seen: list[Message] = []

        def complete(message: Message) -> bool:
            seen.append(message)
            return expected <= set(pairs(seen))

        await stream.until(complete, timeout=120)
        assert all(m.event != "reset" for m in seen)
        assert len(set(pairs(seen))) == len(seen), "no change twice"
        ids = [m.change_id for m in seen]
        assert ids == sorted(ids) and len(set(ids)) == len(ids)
        during = [code for at, code in readers.answers if started <= at <= switched_at]
        assert len(during) > 20 and set(during) == {200}
        assert {code for _, code in readers.answers} == {200}

        # A client that was away resumes across the switch with the ids it had.
        resume_from = seen[len(seen) // 4].change_id
        after = [m for m in seen if m.change_id > resume_from]
        async with open_stream(client, service=service, resume_after=resume_from) as resumed:
            again = await resumed.take(len(after), timeout=60)
        assert [(m.change_id, m.event, m.data) for m in again] == [(m.change_id, m.event, m.data) for m in after]

    conn = await asyncpg.connect(stack.settings.postgres.dsn)
    try:
        kept = await conn.fetchval("SELECT count(*) FROM pg_namespace WHERE nspname = $1", summary["old_schema"])
        assert kept == 1
    finally:
        await conn.close()
    dropped = await asyncio.to_thread(replay_cli, stack, "--drop-old-only", "--json")
    assert dropped.returncode == 0 and summary["old_schema"] in json.loads(dropped.stdout)["dropped"]


# --- time travel ----------------------------------------------------------------------------


async def test_the_state_at_an_instant_is_what_the_read_model_said_then(stack: Stack) -> None:
    async with stack.client("responder", sub="alice") as alice, stack.client("responder", sub="bob") as bob:
        opened = await alice.post("/v1/incidents", json={"title": "queue backlog", "service": unique_service(),
                                                         "severity": "high", "labels": {"queue": "orders"}})
        incident = opened.json()["id"]
        steps = [
            (bob, "acknowledge", None),
            (bob, "severity", {"severity": "critical", "reason": "orders delayed"}),
            (alice, "notes", {"text": "consumers scaled to 12"}),
            (alice, "status", {"to": "investigating"}),
            (alice, "status", {"to": "mitigated", "reason": "backlog draining"}),
            (alice, "status", {"to": "resolved", "reason": "backlog empty"}),
            (bob, "status", {"to": "investigating", "reason": "backlog is back"}),
            (bob, "severity", {"severity": "medium"}),
        ]
        said: list[tuple[datetime, dict]] = []

        async def remember(version: int) -> None:
            row = await alice.get(f"/v1/incidents/{incident}", params={"min_version": version})
            assert row.json()["version"] == version
            said.append((datetime.now(UTC), row.json()))

        await remember(1)
        for client, path, body in steps:
            answer = await client.post(f"/v1/incidents/{incident}/{path}", json=body)
            assert answer.status_code in (200, 201), answer.text
            await remember(answer.json()["version"])

        for instant, row in said:
            state = await alice.get(f"/v1/incidents/{incident}/state", params={"as_of": instant.isoformat()})
            assert state.status_code == 200, state.text
            body = state.json()
            assert (body["status"], body["severity"], body["version"], body["acknowledged"],
                    body["alerts_firing"]) == (row["status"], row["severity"], row["version"],
                                               row["acknowledged_at"] is not None, row["alerts_firing"])
            assert body["incident"] == row  # the whole read-model view, durations and all
            assert body["last_event"]["version"] == row["version"]

        now = await alice.get(f"/v1/incidents/{incident}/state")
        assert now.json()["version"] == said[-1][1]["version"] and now.json()["status"] == "investigating"
        before = said[0][0] - timedelta(hours=1)
        early = await alice.get(f"/v1/incidents/{incident}/state", params={"as_of": before.isoformat()})
        assert early.status_code == 404 and early.json()["code"] == "not_found"
        for bad in ("yesterday", "2025-13-01T00:00:00Z", "2025-06-01T10:00:00"):
            refused = await alice.get(f"/v1/incidents/{incident}/state", params={"as_of": bad})
            assert refused.status_code == 422, bad
            assert refused.json()["errors"][0]["field"] == "as_of"
        unknown = await alice.get(f"/v1/incidents/{uuid.uuid4()}/state")
        assert unknown.status_code == 404


# --- audit and raw events ---------------------------------------------------------------------


async def test_events_and_audit_come_from_the_log(stack: Stack) -> None:
    async with stack.client("responder", sub="alice") as client:
        incident = (await client.post("/v1/incidents", json={"title": "disk full", "service": unique_service(),
                                                              "severity": "low"})).json()["id"]
        for body in ({"to": "investigating"}, {"to": "resolved"}):
            last = await client.post(f"/v1/incidents/{incident}/status", json=body)
        version = last.json()["version"]
        await client.get(f"/v1/incidents/{incident}", params={"min_version": version})
        events = (await client.get(f"/v1/incidents/{incident}/events")).json()
        assert [e["version"] for e in events] == list(range(1, version + 1))
        audit = await client.get(f"/v1/incidents/{incident}/audit")
        assert audit.status_code == 200
        assert audit.json() == {"valid": True, "events": version, "first_bad_version": None, "problem": None,
                                "last_hash": events[-1]["hash"]}
        assert (await client.get(f"/v1/incidents/{uuid.uuid4()}/audit")).status_code == 404


# --- a postmortem of an incident correlated by a real Prometheus ---------------------------------

METRIC = "warroom_pm_requests"
ERROR_RATE = (f'sum(rate({METRIC}_total{{{{{{label}}="{{service}}",status=~"5.."}}}}[{{window}}]))'
              f' / sum(rate({METRIC}_total{{{{{{label}}="{{service}}"}}}}[{{window}}]))')
REQUEST_RATE = f'sum(rate({METRIC}_total{{{{{{label}}="{{service}}"}}}}[{{window}}]))'
GOOD = f'sum(rate({METRIC}_total{{{{{{label}}="{{service}}",status!~"5.."}}}}[{{window}}]))'


@pytest.fixture(scope="module")
def observed(kafka, postgres, prometheus, exporter, tmp_path_factory) -> Iterator[tuple[Stack, str]]:
    """A stack whose correlation asks the suite's Prometheus, and one SLO for `service`."""
    service = f"checkout-{uuid.uuid4().hex[:6]}"
    env = {
        "WARROOM_CORRELATION__ON_OPEN": "true",
        "WARROOM_CORRELATION__SOURCES": json.dumps(["prometheus"]),
        "WARROOM_CORRELATION__PROMETHEUS": json.dumps({
            "url": prometheus.url, "window": "5s", "step": "1s",
            "signals": {"errors": {"query": ERROR_RATE}, "traffic": {"query": REQUEST_RATE, "worse": "down"}}}),
        # Seconds, not minutes: the half minute of normal traffic before the alert is the baseline.
        "WARROOM_CORRELATION__WINDOW": "15s",
        "WARROOM_CORRELATION__SETTLE": "10s",
        "WARROOM_CORRELATION__BASELINE": "30s",
        "WARROOM_TOPOLOGY__DISCOVERY": "[]",
        "WARROOM_IMPACT__SLOS": json.dumps([{
            "name": f"{service}-availability", "service": service, "good_query": GOOD, "total_query": REQUEST_RATE,
            "objective": 0.999, "window": "30d", "burn_window": "1m", "cost_per_minute": 40}]),
    }
    running = start_stack(kafka.bootstrap, postgres.dsn, tmp_path_factory.mktemp("observed"), **env)
    yield running, service
    running.stop()


async def _value(prometheus, expr: str) -> float:
    async with httpx.AsyncClient() as http:
        result = (await http.get(f"{prometheus.url}/api/v1/query", params={"query": expr})).json()["data"]["result"]
    return float(result[0]["value"][1]) if result else 0.0


async def test_a_postmortem_from_alert_to_resolution(observed, prometheus, exporter, tmp_path) -> None:
    stack, service = observed
    requests = exporter.counter(METRIC, "requests by service and status", ("service", "status"))
    errors = {"per_tick": 0}
    rate = REQUEST_RATE.format(label="service", service=service, window="5s")
    ratio = ERROR_RATE.format(label="service", service=service, window="5s")

    async def traffic() -> None:
        while True:
            requests.labels(service=service, status="200").inc(10)
            requests.labels(service=service, status="503").inc(errors["per_tick"])
            await asyncio.sleep(0.1)

    flowing = asyncio.create_task(traffic())
    try:
        # Normal traffic longer than baseline and window together, then the errors, for a few seconds.
        await wait_for_async(lambda: _above(prometheus, f"count_over_time(({rate})[60s:1s])", 50), timeout=120,
                             interval=0.5, message="fifty seconds of normal traffic")
        errors["per_tick"] = 6
        await wait_for_async(lambda: _above(prometheus, f"count_over_time(({ratio} > 0.05)[10s:1s])", 3),
                             timeout=60, interval=0.5, message="Prometheus sees the error ratio above 5%")
        async with stack.client("ingest", sub="alertmanager") as pager, \
                stack.client("responder", sub="alice") as alice, stack.client("responder", sub="bob") as bob:
            alert = {"fingerprint": f"{service}-errors", "status": "firing", "starts_at": datetime.now(UTC).isoformat(),
                     "labels": {"alertname": "HighErrorRate", "service": service, "severity": "high"},
                     "annotations": {"summary": "5xx ratio above 5% for 1m"}, "source": "alertmanager"}
            assert (await pager.post("/v1/alerts", json=alert)).status_code == 202
            incident = await wait_for_async(lambda: _incident_of(alice, service), timeout=60,
                                            message="the alert opened an incident")
            assert (await bob.post(f"/v1/incidents/{incident}/acknowledge")).status_code == 200
            await wait_for_async(lambda: _correlated(alice, incident), timeout=90,
                                 message="the run started on opening completed with a finding")
            assert (await bob.post(f"/v1/incidents/{incident}/severity", json={
                "severity": "critical", "reason": "a third of checkouts fail"})).status_code == 200
            assert (await alice.post(f"/v1/incidents/{incident}/notes", json={
                "text": "Rolled checkout back to the previous release"})).status_code == 201
            assert (await bob.post(f"/v1/incidents/{incident}/root-cause", json={
                "service": service, "signal": "errors",
                "note": "release 2026.11.3 returned 503 on every card payment"})).status_code == 200
            errors["per_tick"] = 0
            resolved = dict(alert, status="resolved", ends_at=datetime.now(UTC).isoformat())
            assert (await pager.post("/v1/alerts", json=resolved)).status_code == 202
            await wait_for_async(lambda: _status(alice, incident, "mitigated"), timeout=60,
                                 message="the last alert resolving mitigated the incident")
            done = await alice.post(f"/v1/incidents/{incident}/status", json={
                "to": "resolved", "reason": "error ratio back under 0.1% for 10 minutes"})
            assert done.status_code == 200, done.text
            row = (await alice.get(f"/v1/incidents/{incident}",
                                   params={"min_version": done.json()["version"]})).json()

            markdown = await alice.get(f"/v1/incidents/{incident}/postmortem", headers={"Accept": "text/markdown"})
            as_json = await alice.get(f"/v1/incidents/{incident}/postmortem", headers={"Accept": "application/json"})
            default = await alice.get(f"/v1/incidents/{incident}/postmortem")
    finally:
        flowing.cancel()

    assert markdown.status_code == 200 and markdown.headers["content-type"].startswith("text/markdown")
    assert default.headers["content-type"].startswith("text/markdown")
    text = markdown.text
    for section in ("Summary", "Root cause", "Impact", "Durations", "Timeline", "Who did what", "Alerts",
                    "Correlation", "Hypotheses", "Notes", "Contributing factors", "Action items"):
        assert f"\n## {section}\n" in text, section
    durations = row["durations"]
    assert 0 < durations["time_to_acknowledge_s"] <= durations["time_to_mitigate_s"] <= durations["time_to_resolve_s"]
    assert f"| Time to acknowledge | {duration(durations['time_to_acknowledge_s'])} |" in text
    assert f"| Time to mitigate | {duration(durations['time_to_mitigate_s'])} |" in text
    assert f"| Time to resolve | {duration(durations['time_to_resolve_s'])} |" in text
    assert f"{METRIC}_total" in text and "HighErrorRate" in text and "| bob | Acknowledged by bob |" in text
    assert "| Severity | critical (opened as high) |" in text

    document = as_json.json()
    assert as_json.headers["content-type"].startswith("application/json")
    assert document["durations"] == durations
    assert len(document["timeline"]) == row["version"] and document["log"]["valid"]
    assert document["incident"]["status"] == "resolved" and document["hypotheses"]
    assert [r["actor"] for r in document["responders"]][:1] == ["producer:alertmanager"]
    # The cause bob confirmed, scored against what the run on opening proposed.
    cause = document["root_cause"]
    assert (cause["service"], cause["signal"], cause["confirmed_by"]) == (service, "errors", "bob")
    named = list(dict.fromkeys(h["service"] for h in document["hypotheses"] if h.get("service")))
    assert cause["rank"] == (named.index(service) + 1 if service in named else None)
    assert f"| Confirmed cause | **{service} (errors)** |" in text

    # The CLI, from the log itself, writes the same document with its pictures beside it.
    written = tmp_path / "postmortem.md"
    cli = subprocess.run([sys.executable, "-m", "warroom", "postmortem", incident, "-o", str(written)], cwd=REPO_ROOT,
                         env=stack.env, capture_output=True, text=True, timeout=120)
    assert cli.returncode == 0, cli.stderr
    document_md = written.read_text(encoding="utf-8")
    assert document_md.split("\n## Correlation\n")[0] == text.split("\n## Correlation\n")[0]
    pictures = sorted(p.name for p in tmp_path.glob("postmortem-*.svg"))
    for name in pictures:
        assert f"]({name})" in document_md, name
    charted = [f for run in document["correlation_runs"] for f in run["findings"] if f["evidence"].get("values")]
    assert len([n for n in pictures if n != "postmortem-graph.svg"]) == len(charted)

    target = os.environ.get("WARROOM_POSTMORTEM_EXAMPLE")
    if target:
        path = Path(target) if Path(target).is_absolute() else REPO_ROOT / target
        for stale in path.parent.glob(f"{path.stem}-*.svg"):
            stale.unlink()
        header = (f"<!-- Rendered by `WARROOM_POSTMORTEM_EXAMPLE={target} uv run python -m pytest "
                  "tests/e2e/test_history.py -k postmortem`: an incident opened by an alert and correlated by a real "
                  f"Prometheus, written by `warroom postmortem ID -o {path.name}`, its charts beside it. -->\n\n")
        path.write_text(header + document_md.replace("](postmortem-", f"]({path.stem}-"), encoding="utf-8")
        for name in pictures:
            (path.parent / name.replace("postmortem-", f"{path.stem}-")).write_bytes((tmp_path / name).read_bytes())


async def _above(prometheus, expr: str, threshold: float) -> bool:
    return await _value(prometheus, expr) > threshold


async def _incident_of(client: httpx.AsyncClient, service: str) -> str | None:
    items = (await client.get("/v1/incidents", params={"service": service})).json()["items"]
    return items[0]["id"] if items else None


async def _correlated(client: httpx.AsyncClient, incident: str) -> bool:
    runs = (await client.get(f"/v1/incidents/{incident}/correlation")).json()
    findings = (await client.get(f"/v1/incidents/{incident}/findings")).json()
    done = {r["run_id"] for r in runs if r["state"] == "completed" and r["trigger"] == "opened"}
    return any(f["run_id"] in done for f in findings)


async def _status(client: httpx.AsyncClient, incident: str, status: str) -> bool:
    return (await client.get(f"/v1/incidents/{incident}")).json()["status"] == status
