"""`warroom demo fault` and `warroom up --demo-faults` refuse what they cannot do, and the
demo's plan: the settings it hands the worker are real settings keys."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from warroom.cli import main
from warroom.demo.stack import NoDemo, alert_rules, as_env, plan, running_demo, with_running_demo
from warroom.settings import load_settings


def test_an_unknown_service_is_refused_naming_the_shops_services(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["demo", "fault", "--service", "cart", "--kind", "latency"])
    assert exit_.value.code == 2
    assert "'frontend', 'checkout', 'search', 'payments', 'inventory'" in capsys.readouterr().err


def test_an_unknown_kind_is_refused_naming_the_kinds(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["demo", "fault", "--service", "payments", "--kind", "meteor"])
    assert exit_.value.code == 2
    assert "'bad-deploy', 'latency', 'crash-loop', 'clear'" in capsys.readouterr().err


def test_demo_faults_without_demo_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["up", "--demo-faults", "off"]) == 2
    assert "--demo-faults only applies with --demo" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["up", "--demo", "--demo-faults", "sometimes"])


def test_a_fault_without_a_running_demo_says_where_it_looked(tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "fault", "--service", "payments", "--kind", "clear", "--data-dir", str(tmp_path)]) == 2
    assert f"is `warroom up --demo` running with --data-dir {tmp_path}?" in capsys.readouterr().err


def test_a_demo_file_of_an_earlier_run_is_not_taken_for_a_running_demo(tmp_path: Path) -> None:
    (tmp_path / "demo.json").write_text(json.dumps({"pid": 111, "shop": "http://127.0.0.1:1"}))
    (tmp_path / "stack.json").write_text(json.dumps({"pid": 222}))
    with pytest.raises(NoDemo, match="earlier `warroom up`"):
        running_demo(tmp_path)
    settings = load_settings()
    assert with_running_demo(settings, tmp_path) is settings
    (tmp_path / "stack.json").write_text(json.dumps({"pid": 111}))
    assert running_demo(tmp_path)["shop"] == "http://127.0.0.1:1"


def test_the_worker_gets_the_demos_prometheus_as_real_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WARROOM_PROMETHEUS_BIN", "/bin/true")  # found: whether it runs is not planned
    run = plan(tmp_path, host="127.0.0.1", gateway_url="http://127.0.0.1:8080", scheduled=True)
    assert run.prometheus_url is not None
    for name, value in run.worker_env().items():
        monkeypatch.setenv(name, value)
    settings = load_settings()
    assert settings.correlation.prometheus.url == run.prometheus_url
    assert settings.correlation.prometheus.service_label == "service"
    # `warroom doctor --data-dir` sees the same settings as that worker.
    (tmp_path / "demo.json").write_text(json.dumps({"pid": os.getpid(), "prometheus": "http://127.0.0.1:9"}))
    (tmp_path / "stack.json").write_text(json.dumps({"pid": os.getpid()}))
    monkeypatch.delenv("WARROOM_CORRELATION__PROMETHEUS__URL")
    seen = with_running_demo(load_settings(), tmp_path).correlation.prometheus
    assert (seen.url, seen.service_label) == ("http://127.0.0.1:9", "service")


def test_without_the_debian_binaries_the_plan_leaves_them_out_and_correlation_unconfigured(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WARROOM_PROMETHEUS_BIN", str(tmp_path / "no-prometheus"))
    monkeypatch.setenv("WARROOM_ALERTMANAGER_BIN", str(tmp_path / "no-alertmanager"))
    run = plan(tmp_path, host="127.0.0.1", gateway_url="http://127.0.0.1:8080", scheduled=False)
    assert set(run.missing) == {"prometheus", "alertmanager"}
    assert run.prometheus_url is None and run.worker_env() == {}
    assert run.shop_argv()[-2:] == ["--faults", "off"]


def test_nested_settings_become_the_environment_variables_that_set_them() -> None:
    assert as_env({"correlation": {"prometheus": {"url": "http://p:9090"}}, "log_level": "debug"}) == {
        "WARROOM_CORRELATION__PROMETHEUS__URL": "http://p:9090", "WARROOM_LOG_LEVEL": "debug"}


def test_the_rules_alert_per_service_after_the_for_duration_given() -> None:
    rules = alert_rules(rule_for="30s")["groups"][0]["rules"]
    assert [r["alert"] for r in rules] == ["HighErrorRate", "HighLatency", "CrashLooping"]
    for rule in rules:
        assert rule["for"] == "30s" and rule["labels"]["severity"] in ("critical", "high")
        assert "service" in rule["annotations"]["summary"]
    assert "sum by (service)" in rules[0]["expr"] and "by (service, le)" in rules[1]["expr"]
