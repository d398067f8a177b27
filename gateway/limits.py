"""Bounded requests: headers and bodies over the limits in `gateway` settings are refused
before anything else looks at them (SPEC §13).

- The request line and headers together over `max_header_bytes`: 431, before a token
  is verified or a route is chosen.
- A body over `max_body_bytes` (`max_alert_body_bytes` for the alert intake, which takes
  up to 10,000 alerts at once): 413 at once when its Content-Length says so, else as
  soon as the bytes read pass the limit, without reading on.
"""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.problems import Problem
from foundation.settings import GatewaySettings

ALERT_PATHS = ("/v1/alerts",)
"""Path prefixes whose bodies may take `max_alert_body_bytes`."""


def _body_over(limit: int) -> str:
    return f"the request body is larger than the {limit} bytes it may take"


class BodyTooLarge(HTTPException):
    """Raised from `receive` once the bytes read pass the limit; answered 413 `too_large`."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, _body_over(limit))


class RequestLimits:
    """ASGI middleware enforcing the header and body limits of `settings`."""

    def __init__(self, app: ASGIApp, settings: GatewaySettings) -> None:
        self.app = app
        self.settings = settings

    def body_limit(self, path: str) -> int:
        if path.startswith(ALERT_PATHS):
            return self.settings.max_alert_body_bytes
        return self.settings.max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        refusal = self._refusal(scope)
        if refusal is not None:
            await refusal.response()(scope, receive, send)
            return
        limit = self.body_limit(scope["path"])
        read = 0

        async def bounded_receive() -> Message:
            nonlocal read
            message = await receive()
            if message["type"] == "http.request":
                read += len(message.get("body", b""))
                if read > limit:
                    raise BodyTooLarge(limit)
            return message

        await self.app(scope, bounded_receive, send)

    def _refusal(self, scope: Scope) -> Problem | None:
        headers: list[tuple[bytes, bytes]] = scope["headers"]
        size = len(scope.get("raw_path") or scope["path"].encode()) + len(scope.get("query_string", b""))
        size += sum(len(name) + len(value) + 4 for name, value in headers)  # ": " and CRLF
        limit = self.settings.max_header_bytes
        if size > limit:
            name, value = max(headers, key=lambda header: len(header[1]), default=(b"", b""))
            return Problem(431, "too_large", f"the request line and headers take {size} bytes, more than the "
                                             f"{limit} they may (the largest header, {name.decode('latin-1')}, "
                                             f"takes {len(value)})")
        for name, value in headers:
            if name == b"content-length":
                limit = self.body_limit(scope["path"])
                try:
                    declared = int(value)
                except ValueError:
                    return Problem.invalid("Content-Length", "must be a number of bytes")
                if declared > limit:
                    return Problem(413, "too_large", _body_over(limit))
        return None
