"""Paging end to end: the notifier as a real process against the stack, real HTTP
receivers (webhook, Slack, Teams payloads) and a real SMTP server (aiosmtpd).

Checked: each payload's documented shape and the webhook's HMAC; every delivery carries
the notification id as `Idempotency-Key`; a receiver answering 503 is retried, then
recorded failed, while the others are paged; escalation fires when nobody acknowledges
and not when someone does; kill -9 of the notifier: every page on the log, none sent
with two different keys.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
from collections.abc import Iterator
from email import message_from_bytes
from pathlib import Path

import httpx
import pytest
from aiosmtpd.controller import Controller

from harness.receiver import Receiver
from harness.waiting import wait_for_async
from stack import Stack
from warroom.servers import free_port

SECRET = "hook-secret"
ADAPTIVE_CARD = "application/vnd.microsoft.card.adaptive"
ESCALATE_AFTER_S = 3


class Mailbox:
    def __init__(self) -> None:
        self.messages: list[bytes] = []

    async def handle_DATA(self, server, session, envelope) -> str:  # noqa: N802 (aiosmtpd's naming)
        self.messages.append(envelope.content)
        return "250 OK"


@pytest.fixture(scope="module")
def receivers() -> Iterator[Receiver]:
    receiver = Receiver(answers={"/down": 503})
    yield receiver
    receiver.close()


@pytest.fixture(scope="module")
def mailbox() -> Iterator[tuple[Mailbox, int]]:
    box, port = Mailbox(), free_port()
    controller = Controller(box, hostname="127.0.0.1", port=port)
    controller.start()
    yield box, port
    controller.stop()


def config(receiver: Receiver, smtp_port: int) -> str:
    url = receiver.url
    return f"""
[notify]
retries = 2
backoff_s = 0.2
max_backoff_s = 1
dashboard_url = "http://warroom.example"

[notify.receivers.hook]
kind = "webhook"
url = "{url}/hook"
secret = "{SECRET}"
[notify.receivers.slack]
kind = "slack"
url = "{url}/slack"
[notify.receivers.teams]
kind = "teams"
url = "{url}/teams"
[notify.receivers.down]
kind = "webhook"
url = "{url}/down"
timeout_s = 2
[notify.receivers.manager]
kind = "webhook"
url = "{url}/manager"
[notify.receivers.mail]
kind = "email"
smtp_host = "127.0.0.1"
smtp_port = {smtp_port}
sender = "warroom@example.com"
to = ["oncall@example.com"]

[[notify.routes]]
services = ["paging-all"]
receivers = ["hook", "slack", "teams", "down", "mail"]

[[notify.routes]]
services = ["paging-escalate"]
receivers = ["hook"]
escalate = [{{ after_s = {ESCALATE_AFTER_S}, receivers = ["manager"] }}]
"""


@pytest.fixture(scope="module")
def notify_config(receivers: Receiver, mailbox: tuple[Mailbox, int],
                  tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("notify") / "notify.toml"
    path.write_text(config(receivers, mailbox[1]))
    return path


@pytest.fixture(scope="module")
def notifier(stack: Stack, notify_config: Path):
    server = stack.start("notifier", "notifier", env={"WARROOM_CONFIG": str(notify_config)})
    yield server
    server.stop(timeout=10)


async def open_incident(client: httpx.AsyncClient, service: str, title: str = "Paging test") -> str:
    answer = await client.post("/v1/incidents", json={"title": title, "service": service, "severity": "high"})
    assert answer.status_code == 201, answer.text
    return answer.json()["id"]


async def log_of(client: httpx.AsyncClient, incident_id: str) -> list[dict]:
    answer = await client.get(f"/v1/incidents/{incident_id}/events")
    answer.raise_for_status()
    return answer.json()


def to(receiver: Receiver, path: str, incident_id: str) -> list:
    return [d for d in receiver.received() if d.path == path and incident_id.encode() in d.raw]


def of_type(events: list[dict], kind: str) -> list[dict]:
    return [e["data"] for e in events if e["type"] == kind]


async def test_each_receiver_gets_its_documented_payload_and_a_down_one_is_retried_then_failed(
        notifier, responder: httpx.AsyncClient, receivers: Receiver, mailbox: tuple[Mailbox, int]) -> None:
    incident = await open_incident(responder, "paging-all", "Checkout <5xx> & timeouts")

    async def all_recorded() -> list[dict] | None:
        events = await log_of(responder, incident)
        sent = {d["receiver"] for d in of_type(events, "NotificationSent")}
        given_up = [d for d in of_type(events, "NotificationFailed") if not d["will_retry"]]
        return events if sent == {"hook", "slack", "teams", "mail"} and given_up else None

    events = await wait_for_async(all_recorded, 60, 0.2, "every page on the log")

    (hook,) = to(receivers, "/hook", incident)
    expected = "sha256=" + hmac.new(SECRET.encode(), hook.raw, hashlib.sha256).hexdigest()
    assert hook.headers["X-Warroom-Signature"] == expected
    body = json.loads(hook.raw)
    assert body["incident"]["id"] == incident and body["incident"]["title"] == "Checkout <5xx> & timeouts"
    assert {"title", "service", "severity", "status", "version", "link"} <= body["incident"].keys()
    assert body["incident"]["link"].startswith("http://warroom.example/") and incident in body["incident"]["link"]

    (slack,) = to(receivers, "/slack", incident)
    assert isinstance(slack.body["text"], str) and slack.body["text"]
    assert all(block["type"] == "section" for block in slack.body["blocks"])
    assert "&lt;5xx&gt; &amp;" in slack.body["blocks"][0]["text"]["text"]  # Slack's escaping

    (teams,) = to(receivers, "/teams", incident)
    assert teams.body["type"] == "message"
    (attachment,) = teams.body["attachments"]
    assert attachment["contentType"] == ADAPTIVE_CARD
    assert attachment["content"]["type"] == "AdaptiveCard" and attachment["content"]["body"]

    box, _ = mailbox
    (mail,) = [message_from_bytes(m) for m in box.messages if incident.encode() in m]
    assert mail["To"] == "oncall@example.com" and "Checkout" in mail["Subject"]

    # Every delivery carries its notification id; the 503 receiver got 1 + retries attempts.
    sent = {d["receiver"]: d["notification_id"] for d in of_type(events, "NotificationSent")}
    for path, name in (("/hook", "hook"), ("/slack", "slack"), ("/teams", "teams")):
        assert [d.headers["Idempotency-Key"] for d in to(receivers, path, incident)] == [sent[name]]
    assert mail["Idempotency-Key"] == sent["mail"]
    failed = of_type(events, "NotificationFailed")
    assert [(f["attempt"], f["will_retry"], f["status"]) for f in failed] == [(1, True, 503), (2, True, 503), (3, False, 503)]
    assert len(to(receivers, "/down", incident)) == 3
    assert len({d.headers["Idempotency-Key"] for d in to(receivers, "/down", incident)}) == 1

    # The read model lists the same ledger, and the timeline tells it.
    async def ledger() -> list[dict] | None:
        answer = await responder.get(f"/v1/incidents/{incident}/notifications")
        answer.raise_for_status()
        rows = answer.json()
        return rows if len(rows) == len(of_type(events, "NotificationSent")) + len(failed) else None

    rows = await wait_for_async(ledger, 30, 0.2, "the notifications read model")
    assert {(r["receiver"], r["type"]) for r in rows} >= {("hook", "NotificationSent"), ("down", "NotificationFailed")}
    assert "secret" not in json.dumps(rows).lower() and SECRET not in json.dumps(rows)
    timeline = (await responder.get(f"/v1/incidents/{incident}/timeline")).json()
    assert any(e["type"] == "NotificationFailed" and "giving up" in e["summary"] for e in timeline), timeline


async def test_escalation_fires_when_nobody_acknowledges_and_not_when_someone_does(
        notifier, responder: httpx.AsyncClient, receivers: Receiver) -> None:
    quiet = await open_incident(responder, "paging-escalate", "acknowledged in time")
    answer = await responder.post(f"/v1/incidents/{quiet}/acknowledge")
    assert answer.status_code == 200, answer.text
    loud = await open_incident(responder, "paging-escalate", "nobody answers")

    async def escalated() -> list[dict]:
        return of_type(await log_of(responder, loud), "Escalated")

    (step,) = await wait_for_async(escalated, 60, 0.2, "the unacknowledged incident escalated")
    assert step["level"] == 1 and step["receivers"] == ["manager"]
    await wait_for_async(lambda: to(receivers, "/manager", loud), 30, 0.1, "the manager paged")
    # `quiet` opened before `loud` with the same delay: its deadline has passed too.
    assert of_type(await log_of(responder, quiet), "Escalated") == []
    assert to(receivers, "/manager", quiet) == []
    assert len(to(receivers, "/hook", quiet)) == 1


async def test_kill_9_of_the_notifier_loses_no_page_and_keeps_its_keys(
        notifier, stack: Stack, responder: httpx.AsyncClient, receivers: Receiver, notify_config: Path) -> None:
    incidents = [await open_incident(responder, "paging-escalate", f"kill {n}") for n in range(10)]
    stack.processes["notifier"].kill()
    more = [await open_incident(responder, "paging-escalate", f"after kill {n}") for n in range(5)]
    stack.start("notifier", "notifier", env={"WARROOM_CONFIG": str(notify_config)})

    async def all_sent() -> bool:
        for incident in incidents + more:
            if not [d for d in of_type(await log_of(responder, incident), "NotificationSent") if d["receiver"] == "hook"]:
                return False
        return True

    await wait_for_async(all_sent, 90, 0.3, "every page recorded after the restart")
    for incident in incidents + more:
        events = await log_of(responder, incident)
        (sent,) = [d for d in of_type(events, "NotificationSent") if d["receiver"] == "hook"]
        keys = {d.headers["Idempotency-Key"] for d in to(receivers, "/hook", incident)}
        assert keys == {sent["notification_id"]}, incident  # resent at most with the same key


async def test_two_notifiers_share_the_pages_and_one_takes_over_when_the_other_stops(
        notifier, stack: Stack, responder: httpx.AsyncClient, receivers: Receiver, notify_config: Path) -> None:
    second = stack.start("notifier-2", "notifier", env={"WARROOM_CONFIG": str(notify_config)})

    def second_assigned() -> bool:
        # A notifier says which partitions it pages for once the group gives it some.
        return "assigned partition(s)" in second.log_path.read_text(errors="replace")

    await wait_for_async(second_assigned, 60, 0.3, "the group gave the second notifier a share of the partitions")
    shared = [await open_incident(responder, "paging-escalate", f"shared {n}") for n in range(9)]
    second.stop(timeout=10)
    alone = [await open_incident(responder, "paging-escalate", f"alone {n}") for n in range(6)]

    async def all_sent() -> bool:
        for incident in shared + alone:
            if not [d for d in of_type(await log_of(responder, incident), "NotificationSent") if d["receiver"] == "hook"]:
                return False
        return True

    await wait_for_async(all_sent, 90, 0.3, "every page recorded, by one notifier or the other")
    for incident in shared + alone:
        (sent,) = [d for d in of_type(await log_of(responder, incident), "NotificationSent") if d["receiver"] == "hook"]
        assert {d.headers["Idempotency-Key"] for d in to(receivers, "/hook", incident)} == {sent["notification_id"]}
