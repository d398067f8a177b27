"""What a page says, in each receiver's documented format (pure).

- webhook: our own JSON (`webhook_body`), signed with HMAC-SHA256 of the exact body bytes.
- slack: an incoming-webhook message, `{"text": …, "blocks": […]}` (Block Kit).
- teams: a workflow webhook message carrying one Adaptive Card
  (`{"type": "message", "attachments": [{"contentType": "application/vnd.microsoft.card.adaptive", …}]}`).
- email: a plain-text `EmailMessage`.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from email.message import EmailMessage
from typing import Any
from uuid import UUID

from pydantic import BaseModel, ConfigDict

from streams.paging import Page, Pager

SIGNATURE_HEADER = "X-Warroom-Signature"
IDEMPOTENCY_HEADER = "Idempotency-Key"
ADAPTIVE_CARD = "application/vnd.microsoft.card.adaptive"


class PageText(BaseModel):
    """The facts every format renders."""

    model_config = ConfigDict(frozen=True)

    notification_id: UUID
    incident_id: UUID
    title: str
    service: str
    severity: str
    status: str
    version: int
    link: str
    trigger: str
    level: int
    receiver: str

    @property
    def headline(self) -> str:
        why = f"escalation level {self.level}" if self.level else self.trigger.replace("_", " ")
        return f"[{self.severity.upper()}] {self.title} ({self.service}, {self.status}) — {why}"


def page_text(pager: Pager, page: Page, dashboard_url: str) -> PageText:
    return PageText(
        notification_id=page.notification_id, incident_id=pager.incident_id, title=pager.title,
        service=pager.service, severity=pager.severity.value, status=pager.status.value,
        version=pager.version, link=f"{dashboard_url.rstrip('/')}/#/incidents/{pager.incident_id}",
        trigger=page.trigger, level=page.level, receiver=page.receiver,
    )


def webhook_body(text: PageText) -> bytes:
    body = {
        "notification_id": str(text.notification_id),
        "trigger": text.trigger,
        "level": text.level,
        "incident": {
            "id": str(text.incident_id), "title": text.title, "service": text.service,
            "severity": text.severity, "status": text.status, "version": text.version, "link": text.link,
        },
    }
    return json.dumps(body, separators=(",", ":"), sort_keys=True).encode()


def signature(secret: str, body: bytes) -> str:
    """`sha256=<hex HMAC-SHA256 of body>`: what `X-Warroom-Signature` carries."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def slack_body(text: PageText) -> bytes:
    message: dict[str, Any] = {
        "text": text.headline,  # the notification's fallback text
        "blocks": [
            {"type": "section", "text": {"type": "mrkdwn", "text": f"*<{text.link}|{_mrkdwn(text.title)}>*"}},
            {"type": "section", "fields": [
                {"type": "mrkdwn", "text": f"*Service*\n{_mrkdwn(text.service)}"},
                {"type": "mrkdwn", "text": f"*Severity*\n{text.severity}"},
                {"type": "mrkdwn", "text": f"*Status*\n{text.status}"},
                {"type": "mrkdwn", "text": f"*Why*\n{text.headline.rsplit(' — ', 1)[1]}"},
            ]},
        ],
    }
    return json.dumps(message).encode()


def teams_body(text: PageText) -> bytes:
    card = {
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "type": "AdaptiveCard",
        "version": "1.4",
        "body": [
            {"type": "TextBlock", "text": text.title, "weight": "Bolder", "size": "Medium", "wrap": True},
            {"type": "FactSet", "facts": [
                {"title": "Service", "value": text.service},
                {"title": "Severity", "value": text.severity},
                {"title": "Status", "value": text.status},
                {"title": "Why", "value": text.headline.rsplit(" — ", 1)[1]},
            ]},
        ],
        "actions": [{"type": "Action.OpenUrl", "title": "Open incident", "url": text.link}],
    }
    message = {"type": "message", "attachments": [{"contentType": ADAPTIVE_CARD, "contentUrl": None, "content": card}]}
    return json.dumps(message).encode()


def email_message(text: PageText, sender: str, to: list[str]) -> EmailMessage:
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = sender, ", ".join(to), text.headline
    message["X-Warroom-Incident"] = str(text.incident_id)
    message[IDEMPOTENCY_HEADER] = str(text.notification_id)
    message.set_content(
        f"{text.title}\n\nService: {text.service}\nSeverity: {text.severity}\nStatus: {text.status}\n"
        f"Incident: {text.incident_id} (version {text.version})\n\n{text.link}\n"
    )
    return message


def _mrkdwn(value: str) -> str:
    # Slack's three control characters; everything else is shown as written.
    return value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
