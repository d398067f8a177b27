"""`warroom doctor`: can this configuration reach what it needs?"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from warroom.settings import Settings


async def _check(name: str, probe: Any, timeout: float) -> dict[str, Any]:
    started = time.monotonic()
    try:
        detail = await asyncio.wait_for(probe, timeout)
        ok = True
    except Exception as err:  # every failure is reported, none is fatal to the others
        detail, ok = f"{type(err).__name__}: {err}", False
    return {"name": name, "ok": ok, "detail": detail, "ms": round((time.monotonic() - started) * 1000)}


async def _kafka(settings: Settings) -> str:
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka.bootstrap)
    try:
        await admin.start()
        topics = set(await admin.list_topics())
    finally:
        await admin.close()
    wanted = [settings.topics.name(k) for k in ("alerts", "commands", "events", "dlq", "outcomes")]
    missing = [t for t in wanted if t not in topics]
    if missing:
        raise RuntimeError(f"reachable at {settings.kafka.bootstrap}, but topics missing: {', '.join(missing)}")
    return f"{settings.kafka.bootstrap}: topics present"


async def _postgres(settings: Settings) -> str:
    import asyncpg

    conn = await asyncpg.connect(settings.postgres.dsn, timeout=settings.postgres.connect_timeout_s)
    try:
        version = await conn.fetchval("show server_version")
    finally:
        await conn.close()
    return f"PostgreSQL {version}"


async def doctor(settings: Settings) -> dict[str, Any]:
    """Run every check concurrently; each reports ok/detail without stopping the others."""
    timeout = settings.correlation.timeout_s
    checks = await asyncio.gather(
        _check("kafka", _kafka(settings), timeout),
        _check("postgres", _postgres(settings), timeout),
    )
    return {"checks": list(checks)}
