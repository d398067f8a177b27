"""Query templating for Prometheus and Loki, and reading their answers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import pytest

from streams.correlation import loki, prometheus
from streams.correlation.prometheus import Series
from streams.correlation.resilience import QueryRejected
from streams.correlation.signals import signal_queries
from streams.correlation.templates import TemplateError, prometheus_graph_link, render, seconds
from foundation.settings import LokiSource, PrometheusSource

T0 = datetime(2024, 5, 1, 10, 0, tzinfo=UTC)


def test_default_promql_for_a_service_label() -> None:
    queries = signal_queries(PrometheusSource(), "checkout")
    assert list(queries) == ["errors", "latency", "traffic", "saturation", "restarts"]
    assert queries["errors"] == (
        '(sum(rate(http_requests_total{service="checkout",status=~"5.."}[5m])) or vector(0))'
        ' / sum(rate(http_requests_total{service="checkout"}[5m]))')
    assert queries["restarts"] == 'sum(changes(process_start_time_seconds{service="checkout"}[5m]))'


def test_label_name_window_and_whole_templates_come_from_settings() -> None:
    settings = PrometheusSource(service_label="app", window="2m", signals={
        "errors": {"query": 'sum(rate(my_errors_total{{{label}="{service}"}}[{window}]))'}})
    assert signal_queries(settings, "checkout") == {"errors": 'sum(rate(my_errors_total{app="checkout"}[2m]))'}


def test_service_names_cannot_break_out_of_the_label_value() -> None:
    query = signal_queries(PrometheusSource(signals={"q": {"query": 'up{{{label}="{service}"}}'}}), 'a"} or up{x="')
    assert query["q"] == 'up{service="a\\"} or up{x=\\""}'


@pytest.mark.parametrize("template", [
    'rate(x{service="checkout"}[{window}])',  # PromQL braces not doubled
    "rate(x[{windw}])",                        # a misspelt placeholder
])
def test_templates_naming_unknown_placeholders_are_refused(template: str) -> None:
    with pytest.raises(TemplateError, match="write literal braces doubled"):
        render(template, label="service", service="s", window="5m")


def test_unbalanced_braces_are_refused_naming_the_template() -> None:
    with pytest.raises(TemplateError, match=r"template 'up\{'"):
        render("up{", window="5m")


@pytest.mark.parametrize(("text", "expected"),
                         [("30s", 30), ("5m", 300), ("1h30m", 5400), ("500ms", 0.5), ("2d", 172800)])
def test_durations(text: str, expected: float) -> None:
    assert seconds(text) == expected


@pytest.mark.parametrize("text", ["", "5", "5 m", "m5", "5mm"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(ValueError):
        seconds(text)


def test_graph_link_holds_the_exact_query() -> None:
    link = prometheus_graph_link("http://prom:9090/", 'sum(rate(x{a="b"}[5m]))', 1800, T0)
    parts = urlsplit(link)
    assert parts.path == "/graph"
    assert parse_qs(parts.query)["g0.expr"] == ['sum(rate(x{a="b"}[5m]))']
    assert parse_qs(parts.query)["g0.range_input"] == ["1800s"]


def test_loki_queries_from_settings() -> None:
    queries = loki.build_queries(LokiSource(service_label="service", step="30s"), "checkout", "20m")
    error = '{service="checkout"} |~ "(?i)(error|exception|fatal)"'
    assert queries == {
        "volume": 'sum(count_over_time({service="checkout"}[30s]))',
        "errors": f"sum(count_over_time({error}[30s]))",
        "baseline": f"sum(count_over_time({error}[30s] offset 1h))",
        "lines": error,
    }


# --- Prometheus answers ----------------------------------------------------------------


def test_parse_vector_matrix_and_scalar() -> None:
    vector = {"status": "success", "data": {"resultType": "vector", "result": [
        {"metric": {"service": "a"}, "value": [1714557600.5, "0.25"]}]}}
    [series] = prometheus.parse_result(vector, "q")
    assert series.labels == {"service": "a"} and series.last == 0.25
    assert series.samples[0][0] == datetime.fromtimestamp(1714557600.5, UTC)
    matrix = {"status": "success", "data": {"resultType": "matrix", "result": [
        {"metric": {}, "values": [[1, "1"], [2, "NaN"], [3, "+Inf"]]}]}}
    assert [v for _, v in prometheus.parse_result(matrix, "q")[0].samples][0] == 1.0
    scalar = {"status": "success", "data": {"resultType": "scalar", "result": [1, "4"]}}
    assert prometheus.parse_result(scalar, "q")[0].last == 4.0


def test_prometheus_error_answers_are_refusals_naming_the_query() -> None:
    body = {"status": "error", "errorType": "bad_data", "error": "1:5: parse error: unexpected"}
    with pytest.raises(QueryRejected, match=r"refused 'up\{': bad_data: 1:5: parse error"):
        prometheus.parse_result(body, "up{")
    with pytest.raises(QueryRejected, match="not a Prometheus API answer"):
        prometheus.parse_result("<html>", "up")


def _series(*values: float | None, step: int = 15) -> Series:
    return Series({}, tuple((T0 + timedelta(seconds=step * i), v) for i, v in enumerate(values) if v is not None))


def test_peak_ignores_nan() -> None:
    assert prometheus.peak([_series(float("nan")), _series(0.3)]) == 0.3
    assert prometheus.peak([_series(float("nan"))]) is None
