"""SVG written as text: elements with escaped attributes and content, how wide a label
is, and where an axis puts its ticks. Pure; the evidence charts and the incident's
service graph are drawn with it.

Everything is styled with presentation attributes (`fill`, `stroke`, `font-size`), never
a `<style>` or `style=`: the same file then looks the same inline in the dashboard (whose
CSP allows no inline style, and where a `<style>` inside an inline SVG would style the
whole page), as an image in a Markdown viewer, and opened on its own.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from xml.sax.saxutils import escape, quoteattr

FONT = "system-ui, -apple-system, 'Segoe UI', Roboto, 'Noto Sans', sans-serif"
INK, MUTED, LINE = "#1b1f24", "#57606a", "#d0d7de"
CHAR_EM = 0.6
"""Average advance of a character of the font above, in em (bold: a tenth more): enough
to keep labels apart and inside their boxes."""

Child = str | Iterable[str] | None


def number(value: float) -> str:
    """A coordinate as short as it can be written (one decimal place)."""
    text = f"{value:.1f}"
    return text[:-2] if text.endswith(".0") else text


def _attribute(value: object) -> str:
    return number(value) if isinstance(value, float) else str(value)


def el(tag: str, attrs: dict[str, object] | None = None, *children: Child) -> str:
    """`<tag a="…">children</tag>`; attributes whose value is None are left out, and
    `class_` is written `class`."""
    written = "".join(f" {key.rstrip('_').replace('_', '-')}={quoteattr(_attribute(value))}"
                      for key, value in (attrs or {}).items() if value is not None)
    inner = "".join(_flatten(children))
    return f"<{tag}{written}>{inner}</{tag}>" if inner else f"<{tag}{written}/>"


def _flatten(children: Iterable[Child]) -> Iterable[str]:
    for child in children:
        if child is None:
            continue
        if isinstance(child, str):
            yield child
        else:
            yield from _flatten(child)


def text(x: float, y: float, content: str, **attrs: object) -> str:
    """A label; its content is escaped."""
    return el("text", {"x": x, "y": y, **attrs}, escape(content))


def title(content: str) -> str:
    """A `<title>`: the tooltip and accessible name of the element it is in; escaped."""
    return el("title", None, escape(content))


def document(width: float, height: float, label: str, *children: Child, **attrs: object) -> str:
    """A standalone SVG of `width` × `height` user units that scales to its container,
    named `label` for screen readers (`role="img"`, `aria-label` and `<title>`)."""
    return el("svg", {"xmlns": "http://www.w3.org/2000/svg", "viewBox": f"0 0 {number(width)} {number(height)}",
                      "width": width, "height": height, "role": "img", "aria-label": label,
                      "font-family": FONT, "font-size": 11, "fill": INK, **attrs},
              title(label), *children)


def text_width(content: str, size: float, *, bold: bool = False) -> float:
    """About how wide `content` is at font size `size`."""
    return len(content) * size * CHAR_EM * (1.1 if bold else 1.0)


def ticks(low: float, high: float, most: int = 5, *, whole: bool = False) -> list[float]:
    """Round values from `low` to `high` (both included when round), at most `most` + 1 of
    them; `whole`: whole numbers only (counts)."""
    if not (math.isfinite(low) and math.isfinite(high)) or high <= low:
        return [low] if math.isfinite(low) else []
    step = nice_step((high - low) / most)
    if whole:
        step = max(1.0, math.ceil(step))
    first = math.ceil(low / step - 1e-9) * step
    count = int(math.floor((high - first) / step + 1e-9)) + 1
    return [round(first + i * step, 12) for i in range(count)]


def nice_step(rough: float) -> float:
    """The smallest of 1, 2, 2.5, 5 × 10ⁿ at least `rough`."""
    magnitude = 10 ** math.floor(math.log10(rough))
    return next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= rough * (1 - 1e-9))
