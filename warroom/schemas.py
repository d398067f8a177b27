"""JSON Schemas of the wire contracts, for producers in other languages."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

from pydantic import create_model

from contracts import ALL_COMMANDS, ALL_EVENTS, Alert, CommandOutcome, EventEnvelope
from contracts.evidence import SeriesEvidence


def _event_schema(data_model: type) -> dict:
    # The envelope with `type` pinned and `data` typed, one schema per event type.
    name = data_model.event_type
    model = create_model(
        f"{name}Event",
        __base__=EventEnvelope,
        type=(Literal[name], ...),  # type: ignore[valid-type]
        data=(data_model, ...),
    )
    return model.model_json_schema(by_alias=True)


def all_schemas() -> dict[str, dict]:
    """File name → JSON Schema for every command, event, alert and outcome, and for the
    evidence of a finding about a series (what `FindingRecorded.evidence` holds then)."""
    schemas: dict[str, dict] = {}
    for command in ALL_COMMANDS:
        schemas[f"commands/{command.__name__}.json"] = command.model_json_schema(by_alias=True)
    for event in ALL_EVENTS:
        schemas[f"events/{event.event_type}.json"] = _event_schema(event)
    schemas["alerts/Alert.json"] = Alert.model_json_schema(by_alias=True)
    schemas["outcomes/CommandOutcome.json"] = CommandOutcome.model_json_schema(by_alias=True)
    schemas["evidence/SeriesEvidence.json"] = SeriesEvidence.model_json_schema(by_alias=True)
    return schemas


def export_schemas(directory: Path) -> list[Path]:
    """Write every schema under `directory`, one file each; return the paths written."""
    written = []
    for name, schema in all_schemas().items():
        path = directory / name
        path.parent.mkdir(parents=True, exist_ok=True)
        schema.setdefault("$schema", "https://json-schema.org/draft/2020-12/schema")
        path.write_text(json.dumps(schema, indent=2, sort_keys=True) + "\n")
        written.append(path)
    return written
