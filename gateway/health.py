"""Open endpoints: liveness, readiness and Prometheus metrics."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from gateway.deps import BusDep, FeedDep, PoolDep
from gateway.problems import Problem, documented

router = APIRouter(tags=["health"])

CHECK_TIMEOUT_S = 2.0


@router.get("/healthz", summary="Liveness: the process answers")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


async def _postgres(pool) -> None:
    await pool.fetchval("select 1", timeout=CHECK_TIMEOUT_S)


async def _kafka(bus) -> None:
    if bus.producer is None:
        raise RuntimeError("producer not started")
    await bus.producer.client.fetch_all_metadata()


@router.get("/readyz", responses=documented(503), summary="Readiness: Kafka and PostgreSQL answer")
async def readyz(request: Request, pool: PoolDep, bus: BusDep, feed: FeedDep) -> Response:
    checks = {"postgres": _postgres(pool), "kafka": _kafka(bus)}
    results = await asyncio.gather(
        *(asyncio.wait_for(check, CHECK_TIMEOUT_S) for check in checks.values()), return_exceptions=True)
    failed = {name: _describe(result) for name, result in zip(checks, results) if isinstance(result, BaseException)}
    if not bus.hearing_outcomes:
        failed["outcomes"] = "not listening for command outcomes"
    if not feed.connected:
        failed["change_feed"] = "not listening for changes"
    watch = getattr(request.app.state, "log_watch", None)
    if watch is not None and watch.problem:
        failed["log"] = f"the log went back: {watch.problem}"
    if failed:
        detail = "; ".join(f"{name}: {why}" for name, why in failed.items())
        return Problem(503, "unavailable", detail, headers={"Retry-After": "1"}, failed=failed).response()
    return JSONResponse({"status": "ready",
                         "checks": {name: "ok" for name in [*checks, "outcomes", "change_feed", "log"]}})


def _describe(err: BaseException) -> str:
    if isinstance(err, TimeoutError):
        return f"no answer within {CHECK_TIMEOUT_S:g}s"
    return f"{type(err).__name__}: {err}" if str(err) else type(err).__name__


@router.get("/metrics", summary="Prometheus metrics", response_class=Response,
            responses={200: {"content": {CONTENT_TYPE_LATEST: {}}}})
async def metrics(request: Request) -> Response:
    registry = request.app.state.metrics.registry
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
