"""Query templates from settings, durations, and links back to the source.

Templates are Python format strings: `{label}`, `{service}`, `{window}`... are
substituted and literal braces are doubled (`{{{label}="{service}"}}` becomes
`{service="checkout"}`). A template naming a placeholder we do not fill is an error that
names the template, instead of a query that silently matches nothing.
"""

from __future__ import annotations

import re
import string
from datetime import datetime, timedelta
from urllib.parse import urlencode

_FORMATTER = string.Formatter()
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w|y)")
_UNIT_S = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}


class TemplateError(ValueError):
    """A template that cannot be rendered; the message names it and the problem."""


def render(template: str, **values: str) -> str:
    """Fill `template` with `values`; raise TemplateError naming any unknown placeholder."""
    try:
        names = [name for _, name, _, _ in _FORMATTER.parse(template) if name is not None]
    except ValueError as exc:
        raise TemplateError(f"template {template!r}: {exc}; write literal braces doubled") from None
    unknown = [name for name in names if name not in values]
    if unknown:
        filled = ", ".join("{" + key + "}" for key in sorted(values))
        raise TemplateError(
            f"template {template!r} uses {{{unknown[0]}}}, but only {filled} are filled; "
            "write literal braces doubled")
    return template.format(**values)


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


def prometheus_graph_link(base_url: str, query: str, range_s: float, end: datetime) -> str:
    """A link to Prometheus' graph page showing `query` over `range_s` up to `end`."""
    params = {
        "g0.expr": query,
        "g0.tab": "0",
        "g0.range_input": f"{max(int(range_s), 1)}s",
        "g0.end_input": end.strftime("%Y-%m-%d %H:%M:%S"),
    }
    return f"{base_url.rstrip('/')}/graph?{urlencode(params)}"


def loki_query_link(base_url: str, query: str, start: datetime, end: datetime) -> str:
    """The Loki API URL that returns exactly the lines or samples behind a finding."""
    params = {"query": query, "start": str(_ns(start)), "end": str(_ns(end))}
    return f"{base_url.rstrip('/')}/loki/api/v1/query_range?{urlencode(params)}"


def _ns(moment: datetime) -> int:
    return int(moment.timestamp() * 1_000_000_000)
