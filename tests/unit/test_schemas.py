"""`warroom contracts export` writes valid JSON Schemas that accept real messages."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import jsonschema

from contracts import ALL_COMMANDS, ALL_EVENTS

ROOT = Path(__file__).resolve().parents[2]


def test_export_writes_a_valid_schema_per_message(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "warroom", "contracts", "export", str(tmp_path)],
        capture_output=True, text=True, timeout=60, cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr
    files = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*.json"))
    assert len(files) == len(ALL_COMMANDS) + len(ALL_EVENTS) + 3
    assert "alerts/Alert.json" in files and "events/IncidentOpened.json" in files
    assert "evidence/SeriesEvidence.json" in files
    for path in tmp_path.rglob("*.json"):
        jsonschema.Draft202012Validator.check_schema(json.loads(path.read_text()))


def test_alert_schema_accepts_a_producer_alert_and_refuses_a_bad_one(tmp_path: Path) -> None:
    from warroom.schemas import export_schemas

    export_schemas(tmp_path)
    schema = json.loads((tmp_path / "alerts" / "Alert.json").read_text())
    good = {"status": "firing", "labels": {"service": "checkout", "alertname": "HighErrorRate"},
            "starts_at": "2026-11-26T10:00:00Z"}
    jsonschema.validate(good, schema)
    bad = {**good, "status": "burning"}
    assert not jsonschema.Draft202012Validator(schema).is_valid(bad)


def test_event_schema_pins_type_and_data(tmp_path: Path) -> None:
    from warroom.schemas import export_schemas

    export_schemas(tmp_path)
    schema = json.loads((tmp_path / "events" / "StatusChanged.json").read_text())
    event = {
        "event_id": "6f1c1c0e-4d43-4b8e-9a55-0d3f6c1c9a01", "type": "StatusChanged", "schema_version": 1,
        "incident_id": "0c6f5a8e-2f3b-4a57-9d5e-2b9f1d5c7e11", "version": 2,
        "occurred_at": "2026-11-26T10:00:00Z", "recorded_at": "2026-11-26T10:00:00Z",
        "causation_id": "5b7d1c3e-8f2a-4c6b-9e1d-3a5f7c9b1d22", "correlation_id": "5b7d1c3e-8f2a-4c6b-9e1d-3a5f7c9b1d22",
        "actor": {"kind": "user", "id": "alice"}, "prev_hash": "0" * 64, "hash": "a" * 64,
        "data": {"from": "open", "to": "investigating", "reason": None},
    }
    jsonschema.validate(event, schema)
    assert not jsonschema.Draft202012Validator(schema).is_valid({**event, "type": "NoteAdded"})
    assert not jsonschema.Draft202012Validator(schema).is_valid({**event, "data": {"to": "nowhere"}})
