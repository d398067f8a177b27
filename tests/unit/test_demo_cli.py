"""`warroom demo fault` and `warroom up --demo-faults` refuse what they cannot do, and the
demo's plan: the settings it hands the worker are real settings keys."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from warroom.cli import main
from warroom.demo.faults import Schedule
from warroom.demo.history import HISTORY_S
from warroom.demo.stack import (
    RULE_WINDOW,
    NoDemo,
    alert_rules,
    as_env,
    correlation_overrides,
    plan,
    running_demo,
    with_running_demo,
)
from foundation.settings import Signal, load_settings
from foundation.templates import seconds


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
    demo = correlation_overrides(run.prometheus_url)["correlation"]
    assert (settings.correlation.window, settings.correlation.settle, settings.correlation.baseline) == (
        demo["window"], demo["settle"], demo["baseline"])
    signals = settings.correlation.prometheus.signals
    assert set(signals) == {"errors", "latency", "traffic", "saturation", "restarts", "deploys"}
    assert all(isinstance(signal, Signal) for signal in signals.values())
    assert signals["traffic"].worse == "down" and settings.correlation.prometheus.volume == "traffic"
    # The shop writes its past for the Prometheus that will read it.
    assert run.shop_argv()[-2:] == ["--history-file", str(tmp_path / "demo" / "history.om")]
    # `warroom doctor --data-dir` sees the same settings as that worker.
    (tmp_path / "demo.json").write_text(json.dumps({"pid": os.getpid(), "prometheus": "http://127.0.0.1:9"}))
    (tmp_path / "stack.json").write_text(json.dumps({"pid": os.getpid()}))
    monkeypatch.delenv("WARROOM_CORRELATION__PROMETHEUS__URL")
    seen = with_running_demo(load_settings(), tmp_path).correlation
    assert (seen.prometheus.url, seen.prometheus.service_label) == ("http://127.0.0.1:9", "service")
    assert seen.model_dump() == settings.correlation.model_dump() | {
        "prometheus": settings.correlation.prometheus.model_dump() | {"url": "http://127.0.0.1:9"}}


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


def test_each_rule_names_the_signal_correlation_reads_for_it() -> None:
    rules = alert_rules()["groups"][0]["rules"]
    signals = correlation_overrides("http://p:9090")["correlation"]["prometheus"]["signals"]
    assert {r["alert"]: r["labels"]["signal"] for r in rules} == {
        "HighErrorRate": "errors", "HighLatency": "latency", "CrashLooping": "restarts"}
    assert {r["labels"]["signal"] for r in rules} <= set(signals)
    assert load_settings().correlation.symptom_signal_label == "signal"


def test_the_analysis_window_reaches_back_past_a_faults_onset_but_not_into_the_fault_before() -> None:
    corr = correlation_overrides("http://p:9090")["correlation"]
    schedule = Schedule(0)
    rate_range = seconds(corr["prometheus"]["window"])
    assert rate_range == seconds(RULE_WINDOW)
    # The previous scheduled fault leaves the rates `rate_range` after its clear; the next
    # begins `gap_s` after that clear, and its first alert starts later still.
    assert seconds(corr["window"]) <= schedule.gap_s - rate_range
    # The slowest first alert of a fault (a crash loop's second start, ~35 s in) is well inside.
    assert seconds(corr["window"]) >= 2 * 35
    # The generated past holds the first fault's whole baseline.
    assert seconds(corr["baseline"]) + seconds(corr["window"]) <= HISTORY_S
