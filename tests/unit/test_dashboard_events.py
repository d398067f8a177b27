"""The dashboard listens for every event type the log can hold, folds a run's
progress as the postmortem does, and refetches silences on every silence event.

An EventSource only delivers the `event:` names it registered for; a type missing from
the list would never reach an open page, however live the stream: so the gateway serves
the list, made from `contracts`, as the module `stream.js` imports."""

from __future__ import annotations

import json
import re
from pathlib import Path

from fastapi.testclient import TestClient

from contracts.events import EVENT_TYPES, SILENCE_EVENT_TYPES
from foundation.settings import Settings
from gateway.app import create_app
from projections.timeline import PROGRESS

STREAM_JS = Path(__file__).resolve().parents[2] / "gateway" / "static" / "js" / "stream.js"


def test_the_page_subscribes_to_every_event_type() -> None:
    served = TestClient(create_app(Settings(auth={"jwt_secret": "x" * 40}))).get("/static/js/event_types.js")
    assert served.status_code == 200 and served.headers["content-type"].startswith("text/javascript")
    assert served.headers["content-security-policy"].startswith("default-src 'self'")
    listed = re.fullmatch(r"export const EVENT_TYPES = (\[.*\]);\n", served.text, re.S)
    assert listed and json.loads(listed.group(1)) == list(EVENT_TYPES)
    stream = STREAM_JS.read_text()
    assert 'import { EVENT_TYPES } from "./event_types.js";' in stream
    assert "for (const type of EVENT_TYPES) source.addEventListener(type" in stream


TIMELINE_JS = STREAM_JS.with_name("timeline.js")


def test_the_page_folds_the_progress_the_postmortem_folds() -> None:
    listed = re.search(r"const PROGRESS = new Set\(\[(.*?)\]\);", TIMELINE_JS.read_text(), re.S)
    assert listed, "PROGRESS not found in timeline.js"
    assert set(re.findall(r'"(\w+)"', listed.group(1))) == PROGRESS
    assert PROGRESS <= set(EVENT_TYPES)


SILENCES_JS = STREAM_JS.with_name("silences.js")
MAIN_JS = STREAM_JS.with_name("main.js")


def test_the_silences_view_refetches_on_every_silence_event() -> None:
    listed = re.search(r"const REFETCH_ON = new Set\(\[(.*?)\]\);", SILENCES_JS.read_text(), re.S)
    assert listed, "REFETCH_ON not found in silences.js"
    assert set(re.findall(r'"(\w+)"', listed.group(1))) == SILENCE_EVENT_TYPES


def test_silence_changes_reach_the_view_before_incidentless_changes_are_dropped() -> None:
    # A silence's change carries `incident: null`; the page drops those for the incident views.
    handler = re.search(r"onChange: \(change\) => \{(.*?)\n    \},", MAIN_JS.read_text(), re.S)
    assert handler, "the stream's onChange not found in main.js"
    body = handler.group(1)
    routed, dropped = body.find("silences.changed(change)"), body.find("if (!change.incident) return")
    assert 0 <= routed < dropped, body
