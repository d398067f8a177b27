"""The gateway application: one place that wires connections, routes and error rendering."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from typing import TypeVar

import asyncpg
import uvicorn
from aiokafka.errors import KafkaError
from fastapi import FastAPI

from gateway import alerts, health, pages, problems, stream
from gateway.auth import TokenVerifier
from gateway.changes import ChangeFeed
from gateway.commands import CommandBus, ReadYourWrites
from gateway.eventlog import EventLog
from gateway.incidents.charts import router as charts_router
from gateway.incidents.history import router as history_router
from gateway.incidents.routes import router as incidents_router
from gateway.limits import RequestLimits
from gateway.log_watch import LogGuard, LogWatch
from gateway.metrics import GatewayMetrics, MetricsMiddleware
from gateway.scorecard.routes import router as scorecard_router
from gateway.silences.routes import router as silences_router
from gateway.services.routes import router as services_router
from gateway.topology.routes import router as topology_router
from projections.schema import MIGRATIONS, quote_ident
from streams.correlation.topology import Topology
from foundation.settings import Settings

log = logging.getLogger(__name__)

# How long startup keeps retrying servers that are not up yet (e.g. started together).
STARTUP_TIMEOUT_S = 60.0

T = TypeVar("T")


async def _init_connection(conn: asyncpg.Connection) -> None:
    for kind in ("json", "jsonb"):
        await conn.set_type_codec(kind, encoder=json.dumps, decoder=json.loads, schema="pg_catalog")


async def _with_retries(what: str, start: Callable[[], Awaitable[T]]) -> T:
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    delay = 0.2
    while True:
        try:
            return await start()
        except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError, KafkaError,
                SchemaNotReady) as err:
            if time.monotonic() + delay > deadline:
                raise RuntimeError(f"gateway: cannot start {what}: {err}") from err
            log.warning("gateway: %s not available yet (%s); retrying", what, err)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 3.0)


async def _open_pool(settings: Settings) -> asyncpg.Pool:
    pg = settings.postgres
    pool = await asyncpg.create_pool(
        pg.dsn, min_size=pg.pool_min, max_size=pg.pool_max, timeout=pg.connect_timeout_s,
        # Read-model SQL names its tables unqualified; the schema is chosen here, once.
        server_settings={"search_path": pg.schema_name, "application_name": "warroom-gateway"},
        init=_init_connection,
    )
    try:
        await _schema_ready(pool, pg.schema_name)
    except BaseException:
        await pool.close()
        raise
    return pool


class SchemaNotReady(Exception):
    """The read models are not (yet) at the schema version this gateway reads."""


async def _schema_ready(pool: asyncpg.Pool, schema: str) -> None:
    """The projector owns the schema (`projections.schema`); the gateway runs no DDL and
    waits until the projector has migrated it to the version the gateway reads."""
    newest = MIGRATIONS[-1][0]
    try:
        version = await pool.fetchval(f"SELECT max(version) FROM {quote_ident(schema)}.schema_migrations")
    except asyncpg.UndefinedTableError:
        version = None
    if version is None or version < newest:
        raise SchemaNotReady(f"schema {schema} is at version {version or 0}, the gateway reads "
                             f"version {newest}: is the projector running?")


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Open the pool, the command bus, the change feed and the event-log reader; close them after."""
    settings: Settings = app.state.settings
    metrics: GatewayMetrics = app.state.metrics
    async with AsyncExitStack() as stack:
        pool = await _with_retries("PostgreSQL pool", lambda: _open_pool(settings))
        stack.push_async_callback(pool.close)

        feed = ChangeFeed(settings, metrics)
        await _with_retries("change feed", feed.start)
        stack.push_async_callback(feed.stop)

        async def start_bus() -> CommandBus:
            bus = CommandBus(settings, metrics, feed, pool)
            try:
                await bus.start()
            except BaseException:
                await bus.stop()
                raise
            return bus

        bus = await _with_retries("Kafka producer and outcome listener", start_bus)
        stack.push_async_callback(bus.stop)

        event_log = EventLog(settings)
        await _with_retries("event-log reader", event_log.start)
        stack.push_async_callback(event_log.stop)

        topology = Topology(settings)
        stack.push_async_callback(topology.aclose)

        log_watch = LogWatch(settings, pool, bus)
        await _with_retries("log watch", log_watch.start)
        stack.push_async_callback(log_watch.stop)

        app.state.pool, app.state.bus, app.state.feed, app.state.event_log = pool, bus, feed, event_log
        app.state.topology, app.state.log_watch = topology, log_watch
        log.info("gateway: ready (schema %s, topics %s.*)", settings.postgres.schema_name, settings.topics.prefix)
        yield


def create_app(settings: Settings) -> FastAPI:
    """The gateway app for `settings`; nothing connects until its lifespan starts.

    Raises ValueError when no way to verify tokens is configured.
    """
    app = FastAPI(
        title="Warroom",
        version="0.1.0",
        summary="Incident response on an event log: commands, read models and a live change stream.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.verifier = TokenVerifier(settings)
    app.state.metrics = GatewayMetrics()
    problems.install(app)
    app.add_middleware(ReadYourWrites)
    app.add_middleware(LogGuard)
    app.add_middleware(MetricsMiddleware, metrics=app.state.metrics)
    # Added last, so it runs first: an oversized request is refused before anything reads it.
    app.add_middleware(RequestLimits, settings=settings.gateway)
    for router in (health.router, pages.router, incidents_router, history_router, charts_router, services_router,
                   scorecard_router, topology_router, silences_router, stream.router, alerts.router):
        app.include_router(router)
    return app


def run(settings: Settings) -> None:
    """Serve the gateway on settings.gateway.host:port until SIGINT/SIGTERM."""
    logging.basicConfig(level=settings.log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    uvicorn.run(
        create_app(settings),
        host=settings.gateway.host,
        port=settings.gateway.port,
        log_level=settings.log_level,
        access_log=settings.log_level == "debug",
        timeout_graceful_shutdown=5,
    )
