"""Events already in the log stay readable and their hash chain still verifies.

`tests/data/events/v1_correlation.json` is a correlation run exactly as the version-1
code wrote it (findings without service or signal, hypotheses as free dicts), sealed by
that code. It must parse, re-serialize to the same bytes, and audit valid forever.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from pathlib import Path

from contracts.common import SYSTEM, Actor
from contracts.events import (
    SCHEMA_VERSION,
    ZERO_HASH,
    CorrelationCompleted,
    EventEnvelope,
    FindingRecorded,
)
from contracts.hypotheses import Hypothesis
from foundation.chain import canonical, digest, seal, verify

V1_LOG = Path(__file__).resolve().parents[1] / "data" / "events" / "v1_correlation.json"
RUN = uuid.UUID("00000000-0000-4000-8000-0000000000aa")
T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def _v1() -> list[EventEnvelope]:
    return [EventEnvelope.model_validate(raw) for raw in json.loads(V1_LOG.read_text())]


def test_a_version_1_log_still_parses_and_verifies() -> None:
    events = _v1()
    assert {e.schema_version for e in events} == {1}
    assert verify(events).valid and verify(events).events == 6
    assert all(digest(e) == e.hash for e in events)


def test_version_1_findings_and_hypotheses_keep_their_shape() -> None:
    events = {e.type: e for e in _v1()}
    finding = events["FindingRecorded"].data
    assert isinstance(finding, FindingRecorded) and finding.service is None and finding.signal is None
    assert "service" not in json.loads(events["FindingRecorded"].model_dump_json(by_alias=True))["data"]
    completed = events["CorrelationCompleted"].data
    assert isinstance(completed, CorrelationCompleted)
    [hypothesis] = completed.hypotheses
    assert isinstance(hypothesis, dict) and hypothesis["category"] == "errors"


def test_a_version_1_event_reserializes_to_the_bytes_it_was_hashed_over() -> None:
    for raw, event in zip(json.loads(V1_LOG.read_text()), _v1(), strict=True):
        raw.pop("hash")
        assert canonical(event) == json.dumps(raw, sort_keys=True, separators=(",", ":"),
                                              ensure_ascii=False).encode()


def test_new_events_are_the_current_version_with_typed_hypotheses_and_named_findings() -> None:
    finding_id = uuid.uuid5(RUN, "prometheus:latency:db")
    finding = FindingRecorded(run_id=RUN, finding_id=finding_id, source="prometheus", kind="latency",
                              summary="latency up", confidence=0.8, service="db", signal="latency")
    hypothesis = Hypothesis(rank=1, service="db", signal="latency", confidence=0.8, path=["db", "checkout"],
                            started_at=T0, evidence=[finding_id])
    completed = CorrelationCompleted(run_id=RUN, outcome="succeeded", hypotheses=[hypothesis])
    events, prev = [], ZERO_HASH
    for version, data in enumerate((finding, completed), start=1):
        events.append(seal(event_id=uuid.uuid5(RUN, str(version)), incident_id=RUN, version=version, data=data,
                           occurred_at=T0, recorded_at=T0, causation_id=RUN, correlation_id=RUN,
                           actor=Actor(kind="source", id="prometheus") if version == 1 else SYSTEM,
                           prev_hash=prev))
        prev = events[-1].hash
    wire = [EventEnvelope.model_validate_json(e.model_dump_json(by_alias=True)) for e in events]
    assert [e.schema_version for e in wire] == [SCHEMA_VERSION, SCHEMA_VERSION] and SCHEMA_VERSION == 5
    assert verify(wire).valid
    assert (wire[0].data.service, wire[0].data.signal) == ("db", "latency")
    assert wire[1].data.hypotheses == [hypothesis]
