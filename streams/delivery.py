"""Sending one page to one receiver, bounded in time; the only I/O of paging.

`deliver` never raises for a receiver's failure: it answers `Delivery(ok=False, error=…)`
so the notifier records it. Every attempt has its own timeout (the receiver's
`timeout_s`), so a slow receiver costs its own page that long and nobody else's.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import aiosmtplib
import httpx

from streams.page_formats import (
    IDEMPOTENCY_HEADER,
    SIGNATURE_HEADER,
    PageText,
    email_message,
    signature,
    slack_body,
    teams_body,
    webhook_body,
)
from foundation.settings import Receiver


@dataclass(frozen=True)
class Delivery:
    ok: bool
    status: int | None = None  # the receiver's HTTP status
    error: str | None = None


async def deliver(client: httpx.AsyncClient, receiver: Receiver, text: PageText) -> Delivery:
    """Send `text` to `receiver` once, within its timeout."""
    try:
        if receiver.kind == "email":
            return await asyncio.wait_for(_email(receiver, text), receiver.timeout_s)
        return await _post(client, receiver, text)
    except (TimeoutError, asyncio.TimeoutError):
        return Delivery(ok=False, error=f"timed out after {receiver.timeout_s:g} s")
    except httpx.HTTPError as err:
        # Only the kind of failure: httpx's messages may carry the URL, and a Slack or Teams
        # webhook URL is itself the secret. The log must never hold it.
        return Delivery(ok=False, error=type(err).__name__)
    except (aiosmtplib.SMTPException, OSError) as err:
        return Delivery(ok=False, error=f"{type(err).__name__}: {err}"[:2_000])


async def _post(client: httpx.AsyncClient, receiver: Receiver, text: PageText) -> Delivery:
    assert receiver.url is not None
    body = {"webhook": webhook_body, "slack": slack_body, "teams": teams_body}[receiver.kind](text)
    headers = {"Content-Type": "application/json", IDEMPOTENCY_HEADER: str(text.notification_id)}
    if receiver.secret is not None:
        headers[SIGNATURE_HEADER] = signature(receiver.secret.get_secret_value(), body)
    timeout = httpx.Timeout(receiver.timeout_s)
    # The deadline covers the whole exchange, not each read: a receiver trickling bytes is slow too.
    response = await asyncio.wait_for(
        client.post(receiver.url, content=body, headers=headers, timeout=timeout), receiver.timeout_s)
    if response.is_success:
        return Delivery(ok=True, status=response.status_code)
    return Delivery(ok=False, status=response.status_code,
                    error=f"HTTP {response.status_code} {response.reason_phrase}")


async def _email(receiver: Receiver, text: PageText) -> Delivery:
    assert receiver.smtp_host is not None and receiver.sender is not None
    password = receiver.smtp_password.get_secret_value() if receiver.smtp_password else None
    await aiosmtplib.send(
        email_message(text, receiver.sender, receiver.to),
        hostname=receiver.smtp_host, port=receiver.smtp_port, username=receiver.smtp_username,
        password=password, start_tls=receiver.smtp_starttls, timeout=receiver.timeout_s,
    )
    return Delivery(ok=True)
