"""Service endpoints."""

from __future__ import annotations

from fastapi import APIRouter

from gateway.auth import Viewer
from gateway.deps import PoolDep
from gateway.problems import documented
from gateway.services import queries
from gateway.services.schemas import Service

router = APIRouter(tags=["services"])


@router.get("/v1/services", response_model=list[Service], responses=documented(401, 403, 503),
            summary="Services and their status")
async def list_services(_: Viewer, pool: PoolDep) -> list[Service]:
    rows = await pool.fetch(queries.SELECT_SERVICES)
    return [Service.model_validate(dict(row)) for row in rows]
