"""Query templates and durations, as settings and the sources both read them.

Templates are Python format strings: `{label}`, `{service}`, `{window}`... are
substituted and literal braces are doubled (`{{{label}="{service}"}}` becomes
`{service="checkout"}`). A template naming a placeholder we do not fill is an error that
names the template, instead of a query that silently matches nothing. Settings check
their templates with `check` at start, so a bad one stops the process naming its key.
"""

from __future__ import annotations

import re
import string
from collections.abc import Iterable
from datetime import timedelta

_FORMATTER = string.Formatter()
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w|y)")
_UNIT_S = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}


class TemplateError(ValueError):
    """A template that cannot be rendered; the message names it and the problem."""


def check(template: str, placeholders: Iterable[str]) -> str:
    """`template` unchanged if it uses only `placeholders`; else TemplateError saying why."""
    allowed = set(placeholders)
    try:
        names = [name for _, name, _, _ in _FORMATTER.parse(template) if name is not None]
    except ValueError as exc:
        raise TemplateError(f"template {template!r}: {exc}; write literal braces doubled") from None
    unknown = [name for name in names if name not in allowed]
    if unknown:
        filled = ", ".join("{" + key + "}" for key in sorted(allowed))
        raise TemplateError(
            f"template {template!r} uses {{{unknown[0]}}}, but only {filled} are filled; "
            "write literal braces doubled")
    return template


def render(template: str, **values: str) -> str:
    """Fill `template` with `values`; raise TemplateError naming any unknown placeholder."""
    return check(template, values).format(**values)


def escape_label_value(value: str) -> str:
    """A label value as it may stand between double quotes in PromQL/LogQL."""
    return value.replace("\\", "\\\\").replace('"', '\\"')


def seconds(duration: str) -> float:
    """A Prometheus-style duration ("90s", "5m", "1h30m") in seconds."""
    text = duration.strip()
    parts = _DURATION.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise ValueError(f"not a duration: {duration!r} (expected e.g. 30s, 5m, 1h30m)")
    return sum(float(number) * _UNIT_S[unit] for number, unit in parts)


def delta(duration: str) -> timedelta:
    return timedelta(seconds=seconds(duration))


def duration_text(value: timedelta) -> str:
    """A timedelta as the shortest Prometheus duration of whole seconds ("1h30m", "45s")."""
    left = max(int(value.total_seconds()), 0)
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if left >= size:
            parts.append(f"{left // size}{unit}")
            left %= size
    return "".join(parts) or "0s"
