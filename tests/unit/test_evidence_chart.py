"""A finding's chart: points become one path, the baseline is shaded, the window, the
anchor, the change and the deploys/restarts of the same service are marked; evidence
without a series has no chart."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta

import pytest

from harness.evidence import series_evidence
from projections.history.evidence_chart import FindingFacts, chart, has_chart, marks_for, series_of
from projections.history.chart_units import unit_of
from projections.history.series_chart import HEIGHT, LEFT, RIGHT, TOP, WIDTH

NS = {"svg": "http://www.w3.org/2000/svg"}
ANCHOR = datetime(2026, 5, 1, 12, 4, tzinfo=UTC)
PLOT = WIDTH - LEFT - RIGHT


def facts(evidence: dict, finding_id: str = "f-1", kind: str = "latency", **extra) -> FindingFacts:
    return FindingFacts.of({"finding_id": finding_id, "kind": kind, "evidence": evidence, **extra})


def drawn(evidence: dict, others: list[FindingFacts] = ()) -> ET.Element:  # type: ignore[assignment]
    svg = chart(facts(evidence), list(others))
    assert svg is not None
    return ET.fromstring(svg)


def one(root: ET.Element, path: str) -> ET.Element:
    found = root.findall(path, NS)
    assert len(found) == 1, (path, len(found))
    return found[0]


def x_of(evidence: dict, moment: str) -> float:
    """Where the chart puts `moment` (the window keeps its own scale)."""
    t = datetime.fromisoformat(moment).timestamp()
    start, end = (datetime.fromisoformat(p).timestamp() for p in evidence["window"].split("/"))
    window_x0 = LEFT + 0.4 * PLOT  # the baseline (an hour) is compressed to 40% of the width
    return window_x0 + (t - start) / (end - start) * (LEFT + PLOT - window_x0)


def vertices(d: str) -> list[tuple[str, float, float]]:
    return [(c, float(x), float(y)) for c, x, y in re.findall(r"([ML])(-?[\d.]+) (-?[\d.]+)", d)]


LATENCY = series_evidence("payments", "latency", anchor=ANCHOR, typical=0.12, bad=1.3)


def test_points_become_one_path_in_order_within_the_plot() -> None:
    root = drawn(LATENCY)
    path = one(root, ".//svg:path[@class='series']")
    points = vertices(path.get("d"))
    assert len(points) == len(LATENCY["values"])
    assert [c for c, _, _ in points].count("M") == 1  # evenly spaced: one stroke
    xs = [x for _, x, _ in points]
    assert xs == sorted(xs) and xs[0] == pytest.approx(LEFT, abs=0.1) and xs[-1] <= WIDTH - RIGHT + 0.1
    assert all(TOP <= y <= HEIGHT for _, _, y in points)
    # The bad values are drawn higher (smaller y) than the calm ones.
    calm, bad = points[0][2], points[-1][2]
    assert bad < calm - 60


def test_the_baseline_is_shaded_and_the_window_marked_with_the_window_keeping_most_of_the_width() -> None:
    root = drawn(LATENCY)
    baseline, window = one(root, ".//svg:rect[@class='baseline']"), one(root, ".//svg:rect[@class='window']")
    assert float(baseline.get("x")) == pytest.approx(LEFT, abs=0.1)
    assert float(baseline.get("width")) == pytest.approx(0.4 * PLOT, abs=0.2)
    assert float(window.get("x")) == pytest.approx(LEFT + 0.4 * PLOT, abs=0.2)
    assert float(window.get("width")) == pytest.approx(0.6 * PLOT, abs=0.2)
    assert baseline.get("fill") != window.get("fill")
    assert one(root, ".//svg:g[@class='axis-break']") is not None


def test_a_short_baseline_keeps_one_time_scale() -> None:
    evidence = series_evidence("payments", "latency", anchor=ANCHOR, typical=0.12, bad=1.3, baseline_s=300,
                               baseline_points=20)
    root = drawn(evidence)
    baseline, window = one(root, ".//svg:rect[@class='baseline']"), one(root, ".//svg:rect[@class='window']")
    assert float(baseline.get("width")) / float(window.get("width")) == pytest.approx(300 / 600, rel=0.02)
    assert root.findall(".//svg:g[@class='axis-break']", NS) == []


def test_the_anchor_the_change_the_typical_value_and_the_peak_are_marked() -> None:
    root = drawn(LATENCY)
    change = one(root, ".//svg:g[@class='change']/svg:line")
    assert float(change.get("x1")) == pytest.approx(x_of(LATENCY, LATENCY["anomaly"]["started_at"]), abs=0.2)
    anchor = one(root, ".//svg:g[@class='anchor']/svg:line")
    assert float(anchor.get("x1")) == pytest.approx(x_of(LATENCY, LATENCY["anchor"]), abs=0.2)
    labels = [t.text for t in root.iter("{http://www.w3.org/2000/svg}text")]
    assert "change 12:03:00" in labels and "incident 12:04:00" in labels
    typical = one(root, ".//svg:g[@class='typical']/svg:line")
    assert typical.get("y1") == typical.get("y2")
    assert "typical 120 ms" in labels
    peak = one(root, ".//svg:circle[@class='peak']")
    series = vertices(one(root, ".//svg:path[@class='series']").get("d"))
    assert float(peak.get("cy")) == pytest.approx(min(y for _, _, y in series), abs=0.1)
    assert root.get("aria-label").startswith("payments · latency (seconds), typical 120 ms, peak")


def test_deploys_and_restarts_of_the_same_service_in_its_run_are_markers() -> None:
    when = datetime(2026, 5, 1, 12, 2, 30, tzinfo=UTC)
    restart = facts({"service": "payments", "signal": "restarts"}, "f-2", "restarts", changed_at=when)
    rollout = facts({"deployment": "payments"}, "f-3", "rollout", service="payments",
                    changed_at=when - timedelta(seconds=40))
    elsewhere = facts({"service": "search", "signal": "restarts"}, "f-4", "restarts", changed_at=when)
    quiet = facts({"service": "payments", "signal": "errors"}, "f-5", "errors", changed_at=when)
    marks = marks_for(facts(LATENCY), [facts(LATENCY), restart, rollout, elsewhere, quiet])
    assert [(m.what, m.finding_id) for m in marks] == [("deploy", "f-3"), ("restart", "f-2")]
    root = drawn(LATENCY, [restart, rollout, elsewhere, quiet])
    line = one(root, ".//svg:g[@class='mark restart']/svg:line")
    assert float(line.get("x1")) == pytest.approx(x_of(LATENCY, when.isoformat()), abs=0.2)
    assert one(root, ".//svg:g[@class='mark deploy']") is not None
    labels = [t.text for t in root.iter("{http://www.w3.org/2000/svg}text")]
    assert "restart 12:02:30" in labels  # the deploy's label gave way: it is 40 s earlier
    titles = [t.text for t in root.iter("{http://www.w3.org/2000/svg}title")]
    assert "a restart of this service at 2026-05-01 12:02:30 UTC" in titles
    assert "a deploy of this service at 2026-05-01 12:01:50 UTC" in titles
    assert "deploy" in labels  # the legend names what lost its label


def test_marker_labels_close_together_do_not_overlap() -> None:
    when = datetime.fromisoformat(LATENCY["anomaly"]["started_at"])
    near = [facts({"service": "payments", "signal": "restarts"}, f"r-{i}", "restarts",
                  changed_at=when + timedelta(seconds=15 * i)) for i in (-1, 1)]
    root = drawn(LATENCY, near)
    boxes = []
    for group in root.findall(".//svg:g", NS):
        if group.get("class", "").split()[0] in {"anchor", "change", "mark"}:
            text = group.find("svg:text", NS)
            assert group.find("svg:title", NS) is not None
            if text is None:
                continue
            x, width = float(text.get("x")), len(text.text) * 10 * 0.6
            left = x - width if text.get("text-anchor") == "end" else x
            boxes.append((float(text.get("y")), left, left + width))
    assert len(root.findall(".//svg:g/svg:title/..", NS)) >= 4
    assert len(boxes) >= 2  # where too crowded, a label gives way to its line's tooltip
    for i, (y, a, b) in enumerate(boxes):
        for y2, a2, b2 in boxes[i + 1:]:
            assert y != y2 or b < a2 or b2 < a, boxes


def test_a_gap_in_the_series_lifts_the_pen() -> None:
    evidence = dict(LATENCY, values=[v for v in LATENCY["values"] if not 0 < v[0] - _window_start() < 150])
    points = vertices(one(drawn(evidence), ".//svg:path[@class='series']").get("d"))
    assert [c for c, _, _ in points].count("M") == 2


def _window_start() -> float:
    return datetime.fromisoformat(LATENCY["window"].split("/")[0]).timestamp()


@pytest.mark.parametrize(("signal", "typical", "bad", "ticks"), [
    ("latency", 0.12, 0.6, {"0 ms", "200 ms", "400 ms"}),
    ("latency", 0.12, 1.3, {"0.0 s", "0.5 s", "1.0 s"}),
    ("errors", 0.002, 0.35, {"0%", "10%", "20%"}),
    ("traffic", 20.0, 8.0, {"0 req/s", "10 req/s", "20 req/s"}),
    ("restarts", 0.0, 2.0, {"0", "1", "2"}),
    ("restarts", 0.0, 1.0, {"0", "1"}),  # counts are whole
])
def test_axis_labels_carry_the_unit_the_signal_tells(signal, typical, bad, ticks) -> None:
    evidence = series_evidence("payments", signal, anchor=ANCHOR, typical=typical, bad=bad,
                               worse="down" if signal == "traffic" else "up")
    labels = {t.text for t in drawn(evidence).iter("{http://www.w3.org/2000/svg}text")}
    assert ticks <= labels, labels
    if signal == "restarts":
        assert "0.5" not in labels
    assert unit_of(signal).name in next(iter(drawn(evidence).iter("{http://www.w3.org/2000/svg}title"))).text


def test_names_are_escaped_and_the_drawing_is_deterministic() -> None:
    evidence = dict(LATENCY, service='pay<ments> & "co"')
    svg = chart(facts(evidence))
    assert svg == chart(facts(evidence))
    root = ET.fromstring(svg)  # well-formed
    assert root.get("data-service") == 'pay<ments> & "co"'
    assert "<script" not in svg and "style=" not in svg


@pytest.mark.parametrize("evidence", [
    {},
    {"query": "rate(x[5m])", "window": "5m", "value": 0.12, "threshold": 0.05, "series": [1, 2]},  # older findings
    {"values": []},
    {"values": [[1714564800, 0.1]]},
    {"values": [[1714564800, 0.1], [1714564800, 0.2]]},
    {"values": [["a", "b"], [None, 1], [1714564800, float("nan")]]},
    {"values": "not a list"},
    {"per_step": [["2026-05-01T12:00:00Z", 3]]},  # a log source's counts
])
def test_evidence_without_a_series_has_no_chart(evidence) -> None:
    assert series_of(evidence) is None
    assert not has_chart(facts(evidence))
    assert chart(facts(evidence)) is None


def test_a_series_without_window_or_anomaly_is_still_drawn_without_shading() -> None:
    root = drawn({"values": [[1714564800 + 60 * i, float(i % 3)] for i in range(30)]})
    assert one(root, ".//svg:path[@class='series']") is not None
    assert root.findall(".//svg:rect[@class='baseline']", NS) == []
    assert root.findall(".//svg:g[@class='change']", NS) == []
