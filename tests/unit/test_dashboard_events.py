"""The dashboard listens for every event type the log can hold, and folds a run's
progress as the postmortem does.

An EventSource only delivers the `event:` names it registered for; a type missing from
`stream.js` would never reach an open page, however live the stream."""

from __future__ import annotations

import re
from pathlib import Path

from contracts.events import EVENT_TYPES
from projections.timeline import PROGRESS

STREAM_JS = Path(__file__).resolve().parents[2] / "gateway" / "static" / "js" / "stream.js"


def test_the_page_subscribes_to_every_event_type() -> None:
    listed = re.search(r"export const EVENT_TYPES = \[(.*?)\];", STREAM_JS.read_text(), re.S)
    assert listed, "EVENT_TYPES not found in stream.js"
    assert re.findall(r'"(\w+)"', listed.group(1)) == list(EVENT_TYPES)


TIMELINE_JS = STREAM_JS.with_name("timeline.js")


def test_the_page_folds_the_progress_the_postmortem_folds() -> None:
    listed = re.search(r"const PROGRESS = new Set\(\[(.*?)\]\);", TIMELINE_JS.read_text(), re.S)
    assert listed, "PROGRESS not found in timeline.js"
    assert set(re.findall(r'"(\w+)"', listed.group(1))) == PROGRESS
    assert PROGRESS <= set(EVENT_TYPES)
