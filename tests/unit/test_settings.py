"""Settings load from TOML and environment, and bad values name their key."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from foundation.settings import Settings, SettingsError, load_settings

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "warroom.toml"


def _keys(model: type, prefix: str = "") -> set[str]:
    keys = set()
    for name, field in model.model_fields.items():
        annotation = field.annotation
        if isinstance(annotation, type) and hasattr(annotation, "model_fields"):
            keys |= _keys(annotation, f"{prefix}{name}.")
        else:
            keys.add(f"{prefix}{name}")
    return keys


def _documented(text: str) -> set[str]:
    # A key counts as documented when it appears set or commented out in its section.
    documented, section = set(), ""
    for raw in text.splitlines():
        line = raw.strip().lstrip("#").strip()
        if line.startswith("[[") and line.endswith("]]"):
            section = line[2:-2] + "."
        elif line.startswith("[") and line.endswith("]"):
            section = line[1:-1] + "."
        elif "=" in line:
            documented.add(section + line.split("=", 1)[0].strip())
    return documented


def test_example_loads_and_equals_defaults() -> None:
    settings = load_settings(EXAMPLE)
    assert settings == Settings()


def test_example_documents_every_key() -> None:
    missing = {k for k in _keys(Settings) if not any(d == k or d.startswith(k + ".") for d in _documented(EXAMPLE.read_text()))}
    assert not missing, f"examples/warroom.toml does not document: {sorted(missing)}"


def test_environment_overrides_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "warroom.toml"
    config.write_text('[topics]\nprefix = "prod"\npartitions = 12\n')
    monkeypatch.setenv("WARROOM_TOPICS__PARTITIONS", "3")
    settings = load_settings(config)
    assert (settings.topics.prefix, settings.topics.partitions) == ("prod", 3)
    assert settings.topics.name("events") == "prod.events"


def test_jwt_secret_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WARROOM_JWT_SECRET", "s3cret")
    assert load_settings().auth.jwt_secret.get_secret_value() == "s3cret"


@pytest.mark.parametrize(
    ("toml", "key"),
    [
        ("[correlation]\ntimeout_s = -1\n", "correlation.timeout_s"),
        ("[kafka]\nbootstrapp = 'x'\n", "kafka.bootstrapp"),
        ("[postgres]\ndsn = 'mysql://x'\n", "postgres.dsn"),
        ("[worker]\nprocessing_guarantee = 'maybe'\n", "worker.processing_guarantee"),
        ("[worker]\nprocessing_guarantee = 'exactly_once'\n", "worker.processing_guarantee"),
    ],
)
def test_bad_file_value_names_the_key(tmp_path: Path, toml: str, key: str) -> None:
    config = tmp_path / "warroom.toml"
    config.write_text(toml)
    with pytest.raises(SettingsError, match=f"'{key}'"):
        load_settings(config)


def test_bad_environment_value_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WARROOM_TOPICS__PARTITIONS", "zero")
    with pytest.raises(SettingsError) as err:
        load_settings()
    assert "'topics.partitions'" in str(err.value) and "WARROOM_TOPICS__PARTITIONS" in str(err.value)


def test_missing_config_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="does not exist"):
        load_settings(tmp_path / "nope.toml")


def test_cli_fails_at_start_naming_the_key(tmp_path: Path) -> None:
    config = tmp_path / "warroom.toml"
    config.write_text("[gateway]\nport = 99999\n")
    result = subprocess.run(
        [sys.executable, "-m", "warroom", "--config", str(config), "doctor"],
        capture_output=True, text=True, timeout=60, cwd=ROOT,
    )
    assert result.returncode == 2
    assert "'gateway.port'" in result.stderr


def test_example_is_valid_toml() -> None:
    tomllib.loads(EXAMPLE.read_text())


@pytest.mark.parametrize("module", ["streams.worker", "streams.notifier"])
def test_stream_processes_fail_at_start_naming_the_key(module: str, tmp_path: Path) -> None:
    config = tmp_path / "warroom.toml"
    config.write_text("[topics]\npartitions = 0\n")
    result = subprocess.run(
        [sys.executable, "-m", module], capture_output=True, text=True, timeout=60, cwd=ROOT,
        env={**{k: v for k, v in os.environ.items() if not k.startswith("WARROOM_")}, "WARROOM_CONFIG": str(config)},
    )
    assert result.returncode == 1, result.stderr
    assert f"{module}: " in result.stderr and "'topics.partitions'" in result.stderr
