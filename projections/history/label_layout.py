"""Where the labels of a chart's vertical lines go, in a few rows above the plot: none
runs into another, and no line runs through a label (pure).

Labels go on the side of their line away from the nearer edge, stepping down a row per
line towards the other side, so each line comes down from its own label past the ones
below it. Where even that leaves no room, the label of least priority shortens (each
item has forms: e.g. word and time, the word, none) and the layout is tried again.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol


class Labelled(Protocol):
    """A line at `x` whose label (None: no label) is `width` wide in its current `form`;
    `form` counts up to `FORMS - 1` (no label); the lowest `priority` gives way first,
    the latest `t` of those first."""

    x: float
    t: float
    priority: int
    form: int

    @property
    def label(self) -> str | None: ...

    @property
    def width(self) -> float: ...


FORMS = 3


def place_labels(items: Sequence[Labelled], *, rows: int, width: float, middle: float) -> dict[int, tuple[int, float]]:
    """(row, left edge) of each item's label, by `id(item)`, on `rows` rows of a chart
    `width` wide whose plot is centred at `middle`; shortens labels (`form`) as needed."""
    if not items:
        return {}
    leftwards = sum(v.x for v in items) / len(items) > middle
    order = sorted(items, key=lambda v: v.x, reverse=leftwards)
    while True:
        taken = _Taken(rows, width)
        places: dict[int, tuple[int, float]] = {}
        failed = None
        for v in order:
            if v.label is None:
                taken.lines.append((v.x, rows))
                continue
            place = taken.place(v.x, v.width, leftwards)
            if place is None:
                failed = v
                break
            places[id(v)] = place
        if failed is None:
            return places
        shorter = [v for v in items if v.form < FORMS - 1 and v.priority < failed.priority] or [failed]
        min(shorter, key=lambda v: (v.priority, -v.t)).form += 1


class _Taken:
    """Labels placed so far: a label on a row runs into no other label there, and into
    no line coming down from a label on a row above; its own line, coming down from it,
    runs through no label on a row below."""

    def __init__(self, rows: int, width: float) -> None:
        self.rows, self.width = rows, width
        self.spans: list[tuple[int, float, float]] = []  # (row, left, right)
        self.lines: list[tuple[float, int]] = []  # (x, row of its label; `rows` for none)

    def place(self, x: float, width: float, leftwards: bool) -> tuple[int, float] | None:
        """(row, left edge) for a label of a line at `x`, on the first row where it fits,
        on the preferred side of the line else the other; None when no row has room."""
        sides = (x - width, x) if leftwards else (x, x - width)
        for row in range(self.rows):
            for left in sides:
                right = left + width
                if left < 2 or right > self.width - 2:
                    continue
                if any(r == row and not (right + 4 < a or left > b + 4) for r, a, b in self.spans):
                    continue
                if any(r < row and left - 2 <= lx <= right + 2 for lx, r in self.lines):
                    continue
                if any(r > row and a - 2 <= x <= b + 2 for r, a, b in self.spans):
                    continue
                self.spans.append((row, left, right))
                self.lines.append((x, row))
                return row, left
        return None
