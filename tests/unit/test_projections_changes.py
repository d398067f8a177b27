"""The change feed's message text: exactly SPEC §8's `data`, with the incident after the event."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

from projections import incidents
from projections.changes import payload
from projections.logged import LoggedEvent, iso
from testing.synthetic import synthetic_log


def test_payload_has_the_sse_fields_and_the_incident_after_the_event():
    rows: dict = {}
    encoder = incidents.SummaryEncoder()
    for n, event in enumerate(synthetic_log(600, concurrent=20), 1):
        rows[event.incident_id] = row = incidents.evolve(rows.get(event.incident_id), event)
        message = json.loads(payload(n, LoggedEvent(event, 0, n), encoder.encode(row)))
        assert list(message) == ["change_id", "incident_id", "version", "type", "occurred_at", "data", "incident"]
        assert message["change_id"] == n and message["version"] == event.version
        assert message["data"] == event.data.model_dump(mode="json", by_alias=True)
        assert message["occurred_at"] == iso(event.occurred_at)
        # Encoded incrementally, yet equal to encoding the whole row afresh.
        assert message["incident"] == incidents.to_summary(row)
        assert message["incident"]["version"] == event.version


def test_timestamps_are_utc_with_z():
    assert iso(datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)) == "2025-01-02T03:04:05Z"
    assert iso(datetime(2025, 1, 2, 5, 4, 5, 120000, tzinfo=timezone(timedelta(hours=2)))) == \
        "2025-01-02T03:04:05.120000Z"
    assert iso(None) is None
