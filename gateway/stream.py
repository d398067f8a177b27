"""GET /v1/stream: every committed change as a Server-Sent Event (SPEC §8).

Resume without gap or duplicate: the client's subscription is registered first (it
collects every change after the feed's current position, its horizon), then the rows
between Last-Event-ID and the horizon are read from the table, then the subscription
is drained. Both halves come from the feed's ordered view, so nothing falls between.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Annotated
from uuid import UUID

import anyio
import asyncpg
from fastapi import APIRouter, Header, Query, Request
from pydantic import Field, TypeAdapter, ValidationError
from sse_starlette import EventSourceResponse
from starlette.background import BackgroundTask

from gateway.auth import StreamViewer
from gateway.changes import Change, ChangeFeed, Subscription
from gateway.deps import FeedDep, PoolDep, SettingsDep
from gateway.fields import Name
from gateway.problems import Problem, documented

router = APIRouter(tags=["stream"])

BACKLOG_PAGE = 500
COALESCE_MAX = 64
SEND_TIMEOUT_S = 30
SHUTDOWN_GRACE_S = 1.0

SELECT_BOUNDS = "select min(change_id), max(change_id) from changes"
SELECT_BACKLOG = """
select change_id, incident_id, version, type, service, payload::text as payload
from changes
where change_id > $1 and change_id <= $2
  and (type = 'reset' or (($3::uuid is null or incident_id = $3) and ($4::text is null or service = $4)))
order by change_id limit $5
"""


# One rule for the header and the query: an integer change id, 0 ≤ id < 2^63.
ChangeId = Annotated[int, Field(ge=0, le=2**63 - 1)]
_CHANGE_ID: TypeAdapter[int] = TypeAdapter(ChangeId)


def _last_event_id(header: str | None, query: int | None) -> int | None:
    """Where to resume: `Last-Event-ID` and `last_event_id` are read alike; given both (a
    browser resuming a stream it opened with the query), the later position wins."""
    if header is None or not header.strip():
        return query
    try:
        value = _CHANGE_ID.validate_python(header.strip())
    except ValidationError as err:
        raise Problem.invalid("Last-Event-ID", err.errors(include_url=False)[0]["msg"]) from None
    return value if query is None else max(value, query)


def _reset(oldest: int | None, newest: int | None) -> bytes:
    data = json.dumps({"reason": "the requested position is no longer kept; refetch and follow from here",
                       "oldest_change_id": oldest, "newest_change_id": newest})
    return f"event: reset\r\ndata: {data}\r\n\r\n".encode()


@router.get(
    "/v1/stream",
    responses={200: {"content": {"text/event-stream": {}},
                     "description": "one message per change: id, event (type), data (JSON)"},
               **documented(401, 403, 422, 503)},
    summary="Server-Sent Events for every committed change",
)
async def stream(
    request: Request, _: StreamViewer, pool: PoolDep, feed: FeedDep, settings: SettingsDep,
    incident: Annotated[UUID | None, Query(description="only this incident")] = None,
    service: Annotated[Name | None, Query(description="only this service")] = None,
    last_event_id_query: Annotated[ChangeId | None, Query(alias="last_event_id",
                                                          description="resume after this change id")] = None,
    last_event_id_header: Annotated[str | None, Header(alias="Last-Event-ID", max_length=40)] = None,
) -> EventSourceResponse:
    after = _last_event_id(last_event_id_header, last_event_id_query)
    if not feed.connected:
        raise Problem.unavailable("the change feed is not connected to PostgreSQL")
    # Subscribed before the response starts, so a client that has the headers misses nothing.
    sub = feed.subscribe(incident, service)
    shutdown = anyio.Event()
    return EventSourceResponse(
        _messages(pool, feed, sub, after, shutdown),
        ping=settings.sse.heartbeat_s,
        send_timeout=SEND_TIMEOUT_S,
        background=BackgroundTask(feed.unsubscribe, sub),
        # On server shutdown the stream ends cleanly (the client reconnects elsewhere
        # with Last-Event-ID) instead of being cancelled mid-response.
        shutdown_event=shutdown,
        shutdown_grace_period=SHUTDOWN_GRACE_S,
    )


async def _close_on(shutdown: anyio.Event, sub: Subscription) -> None:
    await shutdown.wait()
    sub.close()


async def _messages(pool: asyncpg.Pool, feed: ChangeFeed, sub: Subscription, after: int | None,
                    shutdown: anyio.Event) -> AsyncIterator[bytes]:
    closer = asyncio.create_task(_close_on(shutdown, sub))
    try:
        sent = sub.horizon  # the subscription holds exactly the changes after its horizon
        if after is not None:
            oldest, newest = await pool.fetchrow(SELECT_BOUNDS)
            if (oldest is not None and after < oldest - 1) or after > max(newest or 0, sub.horizon):
                yield _reset(oldest, newest)
            else:
                async for page in _backlog(pool, sub, after):
                    yield b"".join(change.frame for change in page)
                # `after` may be ahead of this gateway's feed (it came from a faster copy).
                sent = max(sent, after)
        while True:
            # Whatever is queued goes out in one write: fewer sends when a burst arrives.
            frames = []
            change = await sub.queue.get()
            while change is not None:
                if change.change_id > sent:
                    frames.append(change.frame)
                if len(frames) >= COALESCE_MAX or sub.queue.empty():
                    break
                change = sub.queue.get_nowait()
            if frames:
                yield b"".join(frames)
            if change is None:
                return  # dropped (too slow) or shutting down: the client resumes with Last-Event-ID
    finally:
        closer.cancel()
        feed.unsubscribe(sub)


async def _backlog(pool: asyncpg.Pool, sub: Subscription, after: int) -> AsyncIterator[list[Change]]:
    """Matching rows after `after` up to the subscription's horizon, in order, by pages."""
    position = after
    while position < sub.horizon:
        rows = await pool.fetch(SELECT_BACKLOG, position, sub.horizon, sub.incident, sub.service, BACKLOG_PAGE)
        if rows:
            yield [Change.from_row(row) for row in rows]
        if len(rows) < BACKLOG_PAGE:
            return
        position = rows[-1]["change_id"]
