"""The dashboard: `/` and its static files, open to load; every API call it makes needs a token.

The page is plain HTML, CSS and JavaScript modules from `gateway/static/`: no build step.
The static files are a mount, not routes, so they stay out of the OpenAPI document.
"""

from __future__ import annotations

import json
from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.types import Scope

from contracts.events import EVENT_TYPES

STATIC_DIR = Path(__file__).resolve().parent / "static"

# Everything the page loads comes from this gateway; the token never leaves it.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
        "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    # Revalidate (ETag) on every load, so a restarted gateway's newer page is picked up.
    "Cache-Control": "no-cache",
}


class DashboardFiles(StaticFiles):
    """Static files with the dashboard's headers."""

    async def get_response(self, path: str, scope: Scope):  # type: ignore[no-untyped-def]
        response = await super().get_response(path, scope)
        response.headers.update(SECURITY_HEADERS)
        return response


router = APIRouter(include_in_schema=False)


@router.get("/static/js/event_types.js")
async def event_types() -> Response:
    """The event types the page listens for, as a module made from `contracts`: an
    EventSource delivers only the names it registered, so a type missing from a list
    written by hand would never reach an open page."""
    body = f"export const EVENT_TYPES = {json.dumps(list(EVENT_TYPES))};\n"
    return Response(body, media_type="text/javascript", headers=SECURITY_HEADERS)


router.mount("/static", DashboardFiles(directory=STATIC_DIR), name="static")  # after: routes first


@router.get("/")
async def index() -> FileResponse:
    """The dashboard page; it asks for a token before it calls the API."""
    return FileResponse(STATIC_DIR / "index.html", media_type="text/html", headers=SECURITY_HEADERS)
