"""Dependency aliases so route signatures read like prose.

Every dependency is `async def`: FastAPI runs plain `def` ones in a thread pool, a thread
hop per dependency per request for what is an attribute lookup.
"""

from __future__ import annotations

from typing import Annotated

import asyncpg
from fastapi import Depends, Request

from gateway.changes import ChangeFeed
from gateway.commands import CommandBus
from gateway.eventlog import EventLog
from foundation.settings import Settings


async def _settings(request: Request) -> Settings:
    return request.app.state.settings


async def _pool(request: Request) -> asyncpg.Pool:
    return request.app.state.pool


async def _bus(request: Request) -> CommandBus:
    return request.app.state.bus


async def _feed(request: Request) -> ChangeFeed:
    return request.app.state.feed


async def _event_log(request: Request) -> EventLog:
    return request.app.state.event_log


SettingsDep = Annotated[Settings, Depends(_settings)]
PoolDep = Annotated[asyncpg.Pool, Depends(_pool)]
BusDep = Annotated[CommandBus, Depends(_bus)]
FeedDep = Annotated[ChangeFeed, Depends(_feed)]
EventLogDep = Annotated[EventLog, Depends(_event_log)]
