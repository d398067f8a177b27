"""Every endpoint refuses a missing token (401) and a token without the role it needs (403).

Routes are enumerated from the app itself, so a new endpoint cannot escape this test.
"""

from __future__ import annotations

import re
import uuid

import httpx
import jwt
import pytest

from gateway.app import create_app

OPEN = {("GET", "/healthz"), ("GET", "/readyz"), ("GET", "/metrics"), ("GET", "/"),
        ("GET", "/openapi.json"), ("GET", "/docs"), ("GET", "/docs/oauth2-redirect"), ("GET", "/redoc"),
        ("GET", "/static/js/event_types.js")}  # a module of the (public) dashboard page, like its other files
INGEST_PATHS = re.compile(r"^/v1/alerts")


def routes(settings) -> list[tuple[str, str]]:
    app = create_app(settings)
    try:
        from fastapi.routing import iter_route_contexts
        contexts = [(c.path, getattr(c.original_route, "methods", None)) for c in iter_route_contexts(app.routes)]
    except ImportError:  # FastAPI without lazily included routers
        contexts = [(r.path, getattr(r, "methods", None)) for r in app.routes]
    found = set()
    for path, methods in contexts:
        for method in methods or ():
            if method != "HEAD":
                found.add((method, path))
    return sorted(found)


def required_role(method: str, path: str) -> str:
    """SPEC §7: reads need viewer, alert intake needs ingest, every other write responder."""
    if INGEST_PATHS.match(path):
        return "ingest"
    return "viewer" if method == "GET" else "responder"


ROLES_BELOW = {"viewer": ["ingest"], "responder": ["viewer", "ingest"], "ingest": ["viewer", "responder"]}


async def status_of(client: httpx.AsyncClient, method: str, url: str, headers: dict[str, str]) -> int:
    # Streamed and closed at once: the SSE endpoint never ends on its own.
    kwargs = {"json": {}} if method in ("POST", "PUT", "PATCH") else {}
    async with client.stream(method, url, headers=headers, **kwargs) as response:
        return response.status_code


async def test_every_protected_endpoint_refuses_missing_and_wrong_role_tokens(stack) -> None:
    protected = [(m, p) for m, p in routes(stack.settings) if (m, p) not in OPEN]
    assert len(protected) >= 12, protected
    forged = jwt.encode({"sub": "mallory", "roles": ["admin"], "iss": "warroom", "exp": 2**31},
                        "not-the-secret-" + "y" * 32, algorithm="HS256")
    failures = []
    async with httpx.AsyncClient(base_url=stack.base_url, timeout=30) as client:
        for method, path in protected:
            url = re.sub(r"\{[^}]+\}", str(uuid.uuid4()), path)
            role = required_role(method, path)
            expectations = [({}, 401), ({"Authorization": f"Bearer {forged}"}, 401),
                            ({"Authorization": "Basic YWxpY2U6c2VjcmV0"}, 401)]
            expectations += [(stack.auth(lower), 403) for lower in ROLES_BELOW[role]]
            for headers, expected in expectations:
                got = await status_of(client, method, url, headers)
                if got != expected:
                    failures.append(f"{method} {path} with {headers or 'no token'}: {got}, expected {expected}")
            for allowed in {role, "admin"}:
                got = await status_of(client, method, url, stack.auth(allowed))
                if got in (401, 403):
                    failures.append(f"{method} {path} refused role {allowed}: {got}")
    assert not failures, "\n".join(failures)


@pytest.mark.parametrize("path", ["/healthz", "/readyz", "/metrics", "/"])
async def test_open_endpoints_need_no_token(stack, path: str) -> None:
    async with httpx.AsyncClient(base_url=stack.base_url, timeout=30) as client:
        assert (await client.get(path)).status_code == 200
