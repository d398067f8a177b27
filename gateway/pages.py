"""The page at `/`: open to load; every API call it makes needs a token."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

router = APIRouter(include_in_schema=False)

PLACEHOLDER = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Warroom</title></head>
<body>
<h1>Warroom</h1>
<p>The dashboard is not built yet. The API is documented at <a href="/docs">/docs</a>;
get a token with <code>warroom token --role viewer</code>.</p>
</body></html>
"""


@router.get("/", response_class=HTMLResponse)
async def index() -> str:
    return PLACEHOLDER
