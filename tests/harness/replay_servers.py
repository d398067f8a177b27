"""Local HTTP servers that answer like Loki and the Kubernetes API from small
recordings in their documented JSON formats, and one that answers too slowly.

Each runs in a thread of the test process on a free port; `requests` keeps what was
asked (path and query parameters) so a test can check the label selector it sent.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

DATA = Path(__file__).resolve().parents[1] / "data"

Answer = tuple[int, Any]  # (HTTP status, JSON body or text)
Route = Callable[[str, dict[str, str]], Answer]


class ReplayServer:
    """Serves `route(path, params)`; `delay_s` holds every answer back that long
    (released early by `close`)."""

    def __init__(self, route: Route, delay_s: float = 0.0, host: str = "127.0.0.1") -> None:
        self.route = route
        self.delay_s = delay_s
        self.requests: list[tuple[str, dict[str, str]]] = []
        self._closing = threading.Event()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
                parts = urlsplit(self.path)
                params = {k: v[-1] for k, v in parse_qs(parts.query).items()}
                server.requests.append((parts.path, params))
                if server.delay_s and server._closing.wait(server.delay_s):
                    return
                status, body = server.route(parts.path, params)
                text = body if isinstance(body, str) else json.dumps(body)
                payload = text.encode()
                self.send_response(status)
                self.send_header("Content-Type", "text/plain" if isinstance(body, str) else "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self._httpd = ThreadingHTTPServer((host, 0), Handler)
        self._httpd.daemon_threads = True
        self.host, self.port = self._httpd.server_address[:2]
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="replay", daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def close(self) -> None:
        self._closing.set()
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)


def recording(*parts: str) -> Any:
    return json.loads(DATA.joinpath(*parts).read_text())


# --- Loki ---------------------------------------------------------------------------


def loki_route(answers: dict[str, str]) -> Route:
    """`/loki/api/v1/query_range`: the recording named for the exact query in
    `answers`; any other query gets what Loki answers when nothing matches — success
    with no result, `streams` for a log query (it starts with a selector) else `matrix`."""

    def route(path: str, params: dict[str, str]) -> Answer:
        if path != "/loki/api/v1/query_range":
            return 404, "404 page not found\n"
        query = params.get("query", "")
        if query.count("{") != query.count("}"):
            return 400, f'parse error at line 1, col {len(query)}: syntax error: unexpected $end\n'
        if query in answers:
            return 200, recording("loki", answers[query])
        kind = "streams" if query.lstrip().startswith("{") else "matrix"
        return 200, {"status": "success", "data": {"resultType": kind, "result": [], "stats": {}}}

    return route


# --- Kubernetes ---------------------------------------------------------------------

_LISTS = {
    ("api/v1", "pods"): "pods.json",
    ("api/v1", "events"): "events.json",
    ("apis/apps/v1", "replicasets"): "replicasets.json",
}


def _matches_labels(item: dict[str, Any], selector: str) -> bool:
    # Equality-based selectors only (`a=b,c!=d`), which is all the recordings need.
    labels = item["metadata"].get("labels", {})
    for term in filter(None, (t.strip() for t in selector.split(","))):
        if "!=" in term:
            key, value = term.split("!=", 1)
            if labels.get(key) == value:
                return False
        else:
            key, value = term.replace("==", "=").split("=", 1)
            if labels.get(key) != value:
                return False
    return True


def _matches_fields(item: dict[str, Any], selector: str) -> bool:
    for term in filter(None, (t.strip() for t in selector.split(","))):
        key, value = term.split("=", 1)
        current: Any = item
        for part in key.split("."):
            current = current.get(part) if isinstance(current, dict) else None
        if str(current) != value:
            return False
    return True


def kubernetes_route(path: str, params: dict[str, str]) -> Answer:
    """Namespaced list endpoints for pods, events and replica sets, filtered by
    namespace, `labelSelector` and `fieldSelector` as the API server would."""
    parts = path.strip("/").split("/")
    # api/v1/namespaces/{ns}/{kind}  or  apis/apps/v1/namespaces/{ns}/{kind}
    try:
        at = parts.index("namespaces")
        group, namespace, kind = "/".join(parts[:at]), parts[at + 1], parts[at + 2]
    except (ValueError, IndexError):
        group = namespace = kind = ""
    name = _LISTS.get((group, kind))
    if name is None or len(parts) != at + 3:
        return 404, {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                     "message": "the server could not find the requested resource",
                     "reason": "NotFound", "details": {}, "code": 404}
    listing = recording("kubernetes", name)
    listing["items"] = [
        item for item in listing["items"]
        if item["metadata"].get("namespace") == namespace
        and _matches_labels(item, params.get("labelSelector", ""))
        and _matches_fields(item, params.get("fieldSelector", ""))
    ]
    return 200, listing


# --- a server too slow for the deadline ----------------------------------------------


def prometheus_empty_route(path: str, params: dict[str, str]) -> Answer:
    """What Prometheus answers to a query matching nothing (used behind a delay)."""
    return 200, {"status": "success", "data": {"resultType": "vector", "result": []}}
