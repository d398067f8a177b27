"""Paging settings fail at start naming the key; page formats match their documented shapes."""

from __future__ import annotations

import hashlib
import hmac
import json
from pathlib import Path
from uuid import UUID

import pytest

from streams.page_formats import ADAPTIVE_CARD, PageText, email_message, signature, slack_body, teams_body, webhook_body
from foundation.settings import SettingsError, load_settings


@pytest.mark.parametrize(("toml", "key"), [
    ('[notify.receivers.a]\nkind = "pager"\nurl = "https://x.example"\n', "notify.receivers.a.kind"),
    ('[notify.receivers.a]\nkind = "webhook"\nurl = "not a url"\n', "notify.receivers.a.url"),
    ('[notify.receivers.a]\nkind = "slack"\nurl = "ftp://x.example"\n', "notify.receivers.a.url"),
    ('[notify.receivers.a]\nkind = "slack"\nurl = "https://x.example"\nsecret = "s"\n', "notify.receivers.a"),
    ('[notify.receivers.a]\nkind = "email"\nsmtp_host = "mail"\n', "notify.receivers.a"),
    ('[notify.receivers.a]\nkind = "webhook"\nurl = "https://x.example"\n'
     '[[notify.routes]]\nreceivers = ["a", "b"]\n', "notify"),
    ('[notify.receivers.a]\nkind = "webhook"\nurl = "https://x.example"\n'
     '[[notify.routes]]\nreceivers = ["a"]\nescalate = [{ after_s = 60, receivers = ["boss"] }]\n', "notify"),
    ('[notify.receivers.a]\nkind = "webhook"\nurl = "https://x.example"\n'
     '[[notify.routes]]\nreceivers = ["a"]\nescalate = [{ after_s = 60, receivers = ["a"] }, '
     '{ after_s = 30, receivers = ["a"] }]\n', "notify.routes.0.escalate"),
    ('[notify]\nmax_age_s = 0\n', "notify.max_age_s"),
    ('[notify]\nmax_age_s = -60\n', "notify.max_age_s"),
    ('[notify]\nmax_age_s = "an hour"\n', "notify.max_age_s"),
])
def test_bad_paging_settings_fail_naming_the_key(tmp_path: Path, toml: str, key: str) -> None:
    path = tmp_path / "warroom.toml"
    path.write_text(toml)
    with pytest.raises(SettingsError, match=f"setting '{key}'"):
        load_settings(path)


def test_a_missing_receiver_is_named(tmp_path: Path) -> None:
    path = tmp_path / "warroom.toml"
    path.write_text('[notify.receivers.a]\nkind = "webhook"\nurl = "https://x.example"\n'
                    '[[notify.routes]]\nreceivers = ["a", "nobody"]\n')
    with pytest.raises(SettingsError, match="routes.0.receivers names receiver 'nobody'"):
        load_settings(path)


def test_secrets_do_not_show_in_settings(tmp_path: Path) -> None:
    path = tmp_path / "warroom.toml"
    path.write_text('[notify.receivers.a]\nkind = "webhook"\nurl = "https://x.example"\nsecret = "hunter2"\n')
    settings = load_settings(path)
    assert "hunter2" not in repr(settings) and "hunter2" not in settings.model_dump_json()
    assert settings.notify.receivers["a"].secret.get_secret_value() == "hunter2"


TEXT = PageText(notification_id=UUID(int=7), incident_id=UUID(int=1), title="Checkout <down>", service="checkout",
                severity="high", status="open", version=3, link="http://w.example/#/incidents/1", trigger="opened",
                level=0, receiver="hook")


def test_webhook_body_holds_the_incident_and_its_signature_is_the_hmac_of_the_bytes() -> None:
    body = webhook_body(TEXT)
    incident = json.loads(body)["incident"]
    assert incident == {"id": str(TEXT.incident_id), "title": "Checkout <down>", "service": "checkout",
                        "severity": "high", "status": "open", "version": 3, "link": TEXT.link}
    assert signature("k", body) == "sha256=" + hmac.new(b"k", body, hashlib.sha256).hexdigest()


def test_slack_and_teams_bodies_have_their_documented_envelopes() -> None:
    slack = json.loads(slack_body(TEXT))
    assert set(slack) == {"text", "blocks"} and "Checkout <down>" in slack["text"]
    assert "&lt;down&gt;" in slack["blocks"][0]["text"]["text"]
    teams = json.loads(teams_body(TEXT))
    assert teams["type"] == "message"
    (attachment,) = teams["attachments"]
    assert attachment["contentType"] == ADAPTIVE_CARD
    card = attachment["content"]
    assert card["type"] == "AdaptiveCard" and card["version"] and card["actions"][0]["url"] == TEXT.link


def test_email_carries_the_idempotency_key() -> None:
    message = email_message(TEXT, "warroom@example.com", ["a@example.com", "b@example.com"])
    assert message["Idempotency-Key"] == str(TEXT.notification_id)
    assert message["To"] == "a@example.com, b@example.com" and TEXT.link in message.get_content()
