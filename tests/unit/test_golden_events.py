"""Events already in the log stay readable and their hash chain keeps verifying.

The records below were written by earlier versions of the code (byte for byte as they
sit on the events topic): an opening and a correlation run with free-form hypotheses at
schema version 1, and a `RootCauseConfirmed` at schema version 2. `foundation.chain` hashes
the re-serialized model, so a field added with a default to any of these models would
change their canonical form and break this test: such a change needs a new model or a
new schema version, never a silent default.
"""

from __future__ import annotations

from contracts.events import EventEnvelope
from projections import scorecard
from projections.replay.decoding import Decoder
from foundation.chain import digest, verify

WRITTEN = [
    # schema version 1
    b'{"event_id":"00000000-0000-4000-8000-00000000e001","type":"IncidentOpened","schema_version":1,'
    b'"incident_id":"00000000-0000-4000-8000-00000000a001","version":1,"occurred_at":"2026-11-26T20:29:09Z",'
    b'"recorded_at":"2026-11-26T20:29:09Z","causation_id":"00000000-0000-4000-8000-00000000c001",'
    b'"correlation_id":"00000000-0000-4000-8000-00000000c001","actor":{"kind":"user","id":"alice"},'
    b'"prev_hash":"0000000000000000000000000000000000000000000000000000000000000000",'
    b'"hash":"89dd9177fcb71cf41b73d875305f18b0ccf20de325b3d38e14d8df2879865e09",'
    b'"data":{"title":"checkout 5xx","service":"checkout","severity":"high","description":null,"labels":{},'
    b'"idempotency_key":null}}',
    b'{"event_id":"00000000-0000-4000-8000-00000000e002","type":"CorrelationCompleted","schema_version":1,'
    b'"incident_id":"00000000-0000-4000-8000-00000000a001","version":2,"occurred_at":"2026-11-26T20:29:09Z",'
    b'"recorded_at":"2026-11-26T20:29:09Z","causation_id":"00000000-0000-4000-8000-00000000c002",'
    b'"correlation_id":"00000000-0000-4000-8000-00000000c002","actor":{"kind":"system","id":"warroom"},'
    b'"prev_hash":"89dd9177fcb71cf41b73d875305f18b0ccf20de325b3d38e14d8df2879865e09",'
    b'"hash":"6d13b76847043c47fc1e899075bb47558990f4d766c057a8251875fc224be416",'
    b'"data":{"run_id":"00000000-0000-4000-8000-0000000000aa","outcome":"partial","hypotheses":[{"rank":1,'
    b'"summary":"An error spike: 5xx at 37%","confidence":0.95,"category":"errors","finding_ids":[],'
    b'"sources":["prometheus"],"changed_at":null,"relative_to_start_s":null}]}}',
    # schema version 2
    b'{"event_id":"00000000-0000-4000-8000-00000000e003","type":"RootCauseConfirmed","schema_version":2,'
    b'"incident_id":"00000000-0000-4000-8000-00000000a001","version":3,"occurred_at":"2026-11-26T20:41:00Z",'
    b'"recorded_at":"2026-11-26T20:41:00Z","causation_id":"00000000-0000-4000-8000-00000000c003",'
    b'"correlation_id":"00000000-0000-4000-8000-00000000c003","actor":{"kind":"user","id":"alice"},'
    b'"prev_hash":"6d13b76847043c47fc1e899075bb47558990f4d766c057a8251875fc224be416",'
    b'"hash":"781ba111253fb6d5b112474b4c749f792246b38801a8b8d874bc49cdebcf7e59",'
    b'"data":{"service":"payments-db","signal":"latency","note":"connection pool exhausted","by":"alice",'
    b'"supersedes":null}}',
]


def test_every_written_event_parses_and_the_chain_verifies() -> None:
    events = [EventEnvelope.model_validate_json(raw) for raw in WRITTEN]
    assert [e.schema_version for e in events] == [1, 1, 2]
    assert all(digest(e) == e.hash for e in events)
    assert verify(events).valid and verify(events).events == 3


def test_the_projector_decodes_them_the_same_way() -> None:
    decoder = Decoder()
    decoded = [decoder.decode(raw) for raw in WRITTEN]
    assert [d.type for d in decoded] == ["IncidentOpened", "CorrelationCompleted", "RootCauseConfirmed"]
    assert decoder.slow == 0
    assert decoded[2].data.service == "payments-db"


def test_free_form_hypotheses_of_old_runs_never_match_a_confirmed_cause() -> None:
    events = [EventEnvelope.model_validate_json(raw) for raw in WRITTEN]
    row = None
    for event in events:
        row = scorecard.evolve(row, event, events[0].occurred_at)
    assert row is not None and row["service"] == "payments-db"
    assert (row["rank"], row["top1"], row["top3"], row["first_named_at"]) == (None, False, False, None)
