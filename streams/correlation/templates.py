"""Links back to the source behind a finding; the template and duration helpers live in
`foundation.templates` (settings check templates with them) and are re-exported here."""

from __future__ import annotations

from datetime import datetime
from urllib.parse import urlencode

from foundation.templates import (  # noqa: F401  (re-exported for the sources)
    TemplateError,
    delta,
    duration_text,
    escape_label_value,
    render,
    seconds,
)


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
