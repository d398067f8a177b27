"""A series drawn as a small SVG chart (SPEC §16): the values around the analysis
window, the baseline shaded (drawn compressed when it is long, so the window keeps most
of the width), the window, the incident's anchor and the change marked, the baseline's
typical value as a line, the worst value dotted, and marks (deploys, restarts) as lines;
axis labels in the signal's unit. Pure; `projections.history.evidence_chart` says what of a
finding's evidence is drawn.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from projections.history import svg
from projections.history.chart_units import Unit, clock, tick, time_step, unit_of, when
from projections.history.label_layout import place_labels

WIDTH, HEIGHT = 560.0, 210.0
LEFT, RIGHT, TOP, BOTTOM = 58.0, 14.0, 57.0, 28.0
LABEL_ROWS = (29.0, 40.0, 51.0)  # the baselines of the marker labels, above the plot
SERIES, CHANGE, ANCHOR, DEPLOY = "#0b5cad", "#c62828", "#32383f", "#6f42c1"
BASELINE_FILL, WINDOW_FILL = "#dde8f5", "#fdf0cf"
BASELINE_SHARE = 0.4
"""At most this share of the width goes to the baseline; a longer one is drawn compressed."""
GAP = 3.0
"""Points further apart than this many of their usual spacing are not joined."""


@dataclass(frozen=True)
class Series:
    """The drawable part of a finding's evidence; times are unix seconds."""

    service: str | None
    signal: str
    worse: Literal["up", "down"]
    points: tuple[tuple[float, float], ...]
    window: tuple[float, float] | None
    baseline: tuple[float, float] | None
    anchor: float | None
    step_s: float | None
    typical: float | None
    peak: float | None
    change: float | None


@dataclass(frozen=True)
class Mark:
    """A deploy or restart found for the same service: `what` happened `at` (unix s)."""

    what: str
    at: float
    finding_id: str


@dataclass(frozen=True)
class _Frame:
    """Where times and values land. Time runs in `segments` (t0, t1, x0, x1): one, or
    two when a long baseline is drawn compressed so that the window keeps most of the width."""

    segments: tuple[tuple[float, float, float, float], ...]
    y0: float
    y1: float

    @property
    def t0(self) -> float:
        return self.segments[0][0]

    @property
    def t1(self) -> float:
        return self.segments[-1][1]

    @property
    def compressed(self) -> bool:
        return len(self.segments) > 1

    def x(self, t: float) -> float:
        t0, t1, x0, x1 = next((s for s in self.segments if t <= s[1]), self.segments[-1])
        return x0 + (t - t0) / (t1 - t0) * (x1 - x0)

    def y(self, v: float) -> float:
        return HEIGHT - BOTTOM - (v - self.y0) / (self.y1 - self.y0) * (HEIGHT - BOTTOM - TOP)

    def holds(self, t: float) -> bool:
        return self.t0 <= t <= self.t1


def _frame(series: Series) -> _Frame:
    times = [t for t, _ in series.points]
    t0, t1 = times[0], times[-1]
    if series.window:
        t0, t1 = min(t0, series.window[0]), max(t1, series.window[1])
    left, right = LEFT, WIDTH - RIGHT
    split = series.window[0] if series.window else None
    if split is not None and t0 < split and (split - t0) / (t1 - t0) > BASELINE_SHARE:
        middle = left + BASELINE_SHARE * (right - left)
        segments: tuple[tuple[float, float, float, float], ...] = ((t0, split, left, middle),
                                                                    (split, t1, middle, right))
    else:
        segments = ((t0, t1, left, right),)
    values = [v for _, v in series.points] + [v for v in (series.typical, series.peak) if v is not None]
    low, high = min(values), max(values)
    low = 0.0 if low >= 0 else low
    pad = (high - low) * 0.08 or max(abs(high) * 0.1, 1.0)
    return _Frame(segments, low, high + pad)


def draw(series: Series, marks: Iterable[Mark] = (), *, service: str | None = None,
         finding_id: str | None = None) -> str:
    """The chart of `series` with `marks`, as a standalone SVG document."""
    frame = _frame(series)
    unit = unit_of(series.signal)
    who = service or series.service
    title = f"{who} · {series.signal}" if who else series.signal
    if unit.name:
        title += f" ({unit.name})"
    verticals, unlabelled = _verticals(frame, series, marks)
    parts = [
        _shading(frame, series),
        _axes(frame, unit),
        _typical(frame, series, unit),
        svg.el("path", {"class_": "series", "d": _path(frame, series), "fill": "none", "stroke": SERIES,
                        "stroke-width": 1.6, "stroke-linejoin": "round", "stroke-linecap": "round"}),
        _peak(frame, series, unit),
        verticals,
        svg.text(6.0, 15.0, title, font_size=12, font_weight=600),
        _legend(series, unlabelled, title),
    ]
    return svg.document(WIDTH, HEIGHT, _describe(title, series, unit), *parts, class_="evidence-chart",
                        data_finding_id=finding_id, data_service=who, data_signal=series.signal)


def _describe(title: str, series: Series, unit: Unit) -> str:
    said = [title]
    if series.typical is not None:
        said.append(f"typical {unit.format(series.typical)}")
    if series.peak is not None:
        said.append(f"{'lowest' if series.worse == 'down' else 'peak'} {unit.format(series.peak)}")
    if series.change is not None:
        said.append(f"changed at {clock(series.change, seconds=True)} UTC")
    return ", ".join(said)


SHADES = (("baseline", "baseline", BASELINE_FILL), ("window", "analysis window", WINDOW_FILL))
"""(class and legend key, what it is, fill) of the shaded spans."""


def _shading(frame: _Frame, series: Series) -> list[str]:
    drawn = []
    top, bottom = TOP, HEIGHT - BOTTOM
    for (name, label, fill), span in zip(SHADES, (series.baseline, series.window)):
        if span is None or span[1] <= frame.t0 or span[0] >= frame.t1:
            continue
        x0, x1 = frame.x(max(span[0], frame.t0)), frame.x(min(span[1], frame.t1))
        drawn.append(svg.el("rect", {"class_": name, "x": x0, "y": top, "width": x1 - x0, "height": bottom - top,
                                     "fill": fill},
                            svg.title(f"{label}: {when(span[0])} – {when(span[1])} UTC")))
    return drawn


def _legend(series: Series, unlabelled: set[str], title: str) -> list[str]:
    """Keys at the right of the title row: the shaded spans, and a ◆ for each kind of
    mark some of whose labels gave way, as many as fit beside the title."""
    keys: list[tuple[str, str | None]] = [
        (name, fill) for (name, _, fill), span in zip(SHADES, (series.baseline, series.window)) if span]
    keys += [(what, None) for what in sorted(unlabelled)]
    room = WIDTH - RIGHT - (6 + svg.text_width(title, 12, bold=True) + 12)
    fitting = []
    for label, fill in keys:
        room -= svg.text_width(label, 10) + 24
        if room < 0:
            break
        fitting.append((label, fill))
    x, drawn = WIDTH - RIGHT, []
    for label, fill in reversed(fitting):
        x -= svg.text_width(label, 10)
        drawn.append(svg.text(x, 15.0, label, font_size=10, fill=svg.MUTED))
        x -= 14
        if fill is None:
            drawn.append(svg.el("path", {"d": f"M{svg.number(x + 5)} 6.5l4.5 4.5-4.5 4.5-4.5-4.5z", "fill": DEPLOY}))
        else:
            drawn.append(svg.el("rect", {"x": x, "y": 6.5, "width": 10, "height": 10, "fill": fill,
                                         "stroke": svg.LINE}))
        x -= 10
    return drawn


def _axes(frame: _Frame, unit: Unit) -> list[str]:
    left, right, bottom = LEFT, WIDTH - RIGHT, HEIGHT - BOTTOM
    drawn = [svg.el("line", {"x1": left, "y1": bottom, "x2": right, "y2": bottom, "stroke": svg.LINE})]
    values = svg.ticks(frame.y0, frame.y1, 4, whole=unit.kind == "count")
    for value, label in zip(values, unit.ticks(values)):
        y = frame.y(value)
        drawn.append(svg.el("line", {"x1": left, "y1": y, "x2": right, "y2": y, "stroke": "#eef1f4"}))
        drawn.append(svg.text(left - 6, y + 3.5, label, font_size=10, fill=svg.MUTED, text_anchor="end"))
    placed: list[float] = []
    # The window's ticks first: where they are, the baseline's give way.
    for t0, t1, x0, x1 in reversed(frame.segments):
        most = max(2, int((x1 - x0) // 70))
        spacing = time_step(t1 - t0, most)
        t = math.ceil(t0 / spacing) * spacing
        while t <= t1 + 1e-6:
            x = frame.x(t)
            label = tick(t, spacing, t1 - t0)
            room = svg.text_width(label, 10) / 2 + 6
            if all(abs(x - other) > 2 * room for other in placed) and left - 4 <= x <= right + 4:
                placed.append(x)
                drawn.append(svg.el("line", {"x1": x, "y1": bottom, "x2": x, "y2": bottom + 4, "stroke": svg.MUTED}))
                drawn.append(svg.text(x, bottom + 15, label, font_size=10, fill=svg.MUTED, text_anchor="middle"))
            t += spacing
    if frame.compressed:
        x = frame.segments[1][2]
        drawn.append(svg.el("g", {"class_": "axis-break"},
                            svg.el("path", {"d": f"M{svg.number(x - 5)} {svg.number(bottom + 4)}l4-8m2 8l4-8",
                                            "stroke": svg.MUTED, "fill": "none"}),
                            svg.title("the baseline is drawn compressed; the window keeps its scale")))
    drawn.append(svg.text(6.0, bottom + 15, "UTC", font_size=10, fill=svg.MUTED))
    return drawn


def _typical(frame: _Frame, series: Series, unit: Unit) -> str | None:
    if series.typical is None:
        return None
    y = frame.y(series.typical)
    label = f"typical {unit.format(series.typical)}"
    # At the window's end, on the side the anomaly did not go to: the series is elsewhere.
    below = series.worse == "up" and HEIGHT - BOTTOM - y > 16
    return svg.el("g", {"class_": "typical"},
                  svg.el("line", {"x1": LEFT, "y1": y, "x2": WIDTH - RIGHT, "y2": y, "stroke": svg.MUTED,
                                  "stroke-width": 1, "stroke-dasharray": "5 3"}),
                  svg.text(WIDTH - RIGHT - 3, y + 12 if below else y - 4, label, font_size=10, fill=svg.MUTED,
                           text_anchor="end", **HALO))


HALO = {"stroke": "#ffffff", "stroke_width": 3, "stroke_linejoin": "round", "paint_order": "stroke"}
"""Keeps a label inside the plot legible over the lines it crosses."""


def _path(frame: _Frame, series: Series) -> str:
    """One path through the points; a gap much wider than the points' usual spacing
    (a scrape that failed, a process that was down) lifts the pen."""
    points = series.points
    inside = series.window[0] if series.window else points[0][0]
    before = [b[0] - a[0] for a, b in zip(points, points[1:]) if b[0] <= inside]
    within = [b[0] - a[0] for a, b in zip(points, points[1:]) if a[0] >= inside]
    usual_before = statistics.median(before) if before else None
    usual_within = series.step_s or (statistics.median(within) if within else None)
    commands = []
    previous: float | None = None
    for t, v in points:
        usual = usual_within if t > inside else usual_before
        lifted = previous is None or (usual is not None and t - previous > GAP * usual + 1e-9)
        commands.append(f"{'M' if lifted else 'L'}{svg.number(frame.x(t))} {svg.number(frame.y(v))}")
        previous = t
    return " ".join(commands)


def _peak(frame: _Frame, series: Series, unit: Unit) -> str | None:
    if series.peak is None:
        return None
    peak = series.peak
    candidates = [p for p in series.points if not series.window or p[0] >= series.window[0]] or list(series.points)
    t, v = min(candidates, key=lambda p: (abs(p[1] - peak), p[0]))
    word = "lowest" if series.worse == "down" else "peak"
    return svg.el("circle", {"class_": "peak", "cx": frame.x(t), "cy": frame.y(v), "r": 3.2, "fill": CHANGE},
                  svg.title(f"{word} {unit.format(v)} at {clock(t, seconds=True)} UTC"))


@dataclass
class _Vertical:
    """A moment drawn as a vertical line, and the label it may get."""

    t: float
    x: float
    cls: str
    colour: str
    word: str
    dash: str
    priority: int  # which label gives way first when crowded: the lowest
    form: int = 0  # 0: word and time, 1: the word, 2: no label

    @property
    def label(self) -> str | None:
        return (f"{self.word} {clock(self.t, seconds=True)}", self.word, None)[self.form]

    @property
    def width(self) -> float:
        return svg.text_width(self.label or "", 10, bold=self.cls == "change") + 4


def _verticals(frame: _Frame, series: Series, marks: Iterable[Mark]) -> tuple[list[str], set[str]]:
    """The change, the anchor and the marks: a line each, labelled above the plot; and
    the kinds of mark some of whose labels gave way (for the legend to name)."""
    wanted = []
    if series.change is not None:
        wanted.append((series.change, "change", CHANGE, "change", "", 2))
    if series.anchor is not None:
        wanted.append((series.anchor, "anchor", ANCHOR, "incident", "2 2", 1))
    for mark in sorted(marks, key=lambda m: (m.at, m.what)):
        wanted.append((mark.at, f"mark {mark.what}", DEPLOY, mark.what, "4 2", 0))
    verticals = [_Vertical(t, frame.x(t), *rest) for t, *rest in wanted if frame.holds(t)]
    places = place_labels(verticals, rows=len(LABEL_ROWS), width=WIDTH, middle=(LEFT + WIDTH - RIGHT) / 2)
    drawn = []
    for v in verticals:
        place = places.get(id(v))
        top = LABEL_ROWS[place[0]] + 3 if place else TOP - 4
        drawn.append(svg.el(
            "g", {"class_": v.cls},
            svg.el("line", {"x1": v.x, "y1": top, "x2": v.x, "y2": HEIGHT - BOTTOM, "stroke": v.colour,
                            "stroke-width": 1.6 if v.cls == "change" else 1.2, "stroke-dasharray": v.dash or None}),
            _glyph(v.cls, v.x, v.colour),
            _label(v, place),
            svg.title(f"{_meaning(v.cls, v.word)} at {when(v.t)} UTC")))
    unlabelled = {v.word for v in verticals if v.priority == 0 and (v.label is None or id(v) not in places)}
    return drawn, unlabelled


def _label(v: _Vertical, place: tuple[int, float] | None) -> str | None:
    """The label, against its line on whichever side it was given (the room reserved
    for it is generous, the text hugs the line)."""
    if place is None or v.label is None:
        return None
    row, left = place
    before = left < v.x - 1
    return svg.text(v.x - 2 if before else v.x + 2, LABEL_ROWS[row], v.label, font_size=10, fill=v.colour,
                    text_anchor="end" if before else None, font_weight=600 if v.cls == "change" else None)


def _glyph(cls: str, x: float, colour: str) -> str | None:
    """A small shape where the line meets the plot: ▼ for the change, ◆ for a mark."""
    y = TOP
    if cls == "change":
        return svg.el("path", {"d": f"M{svg.number(x - 4)} {svg.number(y - 5)}h8l-4 6z", "fill": colour})
    if cls.startswith("mark"):
        return svg.el("path", {"d": f"M{svg.number(x)} {svg.number(y - 7)}l4 4-4 4-4-4z", "fill": colour})
    return None


def _meaning(cls: str, word: str) -> str:
    if cls == "anchor":
        return "the incident's moment (its first alert, else its opening)"
    if cls == "change":
        return "the first anomalous value"
    return f"a {word} of this service"
