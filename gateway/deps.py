"""Dependency aliases so route signatures read like prose."""

from __future__ import annotations

from typing import Annotated

import asyncpg
from fastapi import Depends, Request

from gateway.changes import ChangeFeed
from gateway.commands import CommandBus
from gateway.eventlog import EventLog
from warroom.settings import Settings


def _settings(request: Request) -> Settings:
    return request.app.state.settings


def _pool(request: Request) -> asyncpg.Pool:
    return request.app.state.pool


def _bus(request: Request) -> CommandBus:
    return request.app.state.bus


def _feed(request: Request) -> ChangeFeed:
    return request.app.state.feed


def _event_log(request: Request) -> EventLog:
    return request.app.state.event_log


SettingsDep = Annotated[Settings, Depends(_settings)]
PoolDep = Annotated[asyncpg.Pool, Depends(_pool)]
BusDep = Annotated[CommandBus, Depends(_bus)]
FeedDep = Annotated[ChangeFeed, Depends(_feed)]
EventLogDep = Annotated[EventLog, Depends(_event_log)]
