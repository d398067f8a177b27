"""`warroom doctor`: can this configuration reach what it needs?"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from foundation.settings import Settings


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
    wanted = [settings.topics.name(k) for k in ("alerts", "commands", "events", "dlq", "outcomes", "silences")]
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


def _source_check(entry: dict[str, Any], ms: int) -> dict[str, Any]:
    """A probe entry as a check: ok when the source answered every query, or is simply
    not configured; a query that returned nothing, an error or a timeout fails it."""
    outcome = entry["outcome"]
    parts = [outcome]
    if entry.get("error"):
        parts.append(entry["error"])
    if entry.get("queries"):
        parts.append(f"{len(entry['queries'])} quer{'y' if len(entry['queries']) == 1 else 'ies'} run")
    labels = entry.get("label_values")
    if labels:
        if "error" in labels:
            parts.append(f"label {labels['label']!r}: {labels['error']}")
        else:
            seen = "has" if labels["has_service"] else "does NOT have"
            parts.append(f"label {labels['label']!r} {seen} the service among {labels['count']} "
                         f"value(s) (e.g. {', '.join(labels['values'][:5]) or 'none'})")
    if entry.get("findings"):
        parts.append(f"{len(entry['findings'])} finding(s)")
    return {"name": f"source {entry['source']}", "ok": outcome in ("succeeded", "unavailable"),
            "detail": "; ".join(parts), "ms": ms, "probe": entry}


async def _sources(settings: Settings, service: str | None) -> list[dict[str, Any]]:
    """One check per configured source, from a real run of its queries for `service`."""
    from streams.correlation import build_sources, close_sources, probe_sources

    names = list(settings.correlation.sources)
    if service is None:
        built = build_sources(settings)
        try:
            return [{"name": f"source {name}", "ok": True, "ms": 0,
                     "detail": (built[name].unavailable_reason() or
                                "configured; queries not run: pass --service S to run them for a service")}
                    for name in names if name in built]
        finally:
            await close_sources(built)
    started = time.monotonic()
    limit = settings.correlation.run_deadline_s + settings.correlation.timeout_s
    try:
        entries = await asyncio.wait_for(probe_sources(settings, service), limit)
    except Exception as err:
        return [{"name": f"source {name}", "ok": False, "ms": round((time.monotonic() - started) * 1000),
                 "detail": f"probe for service {service!r} did not finish: {type(err).__name__}: {err}"}
                for name in names]
    ms = round((time.monotonic() - started) * 1000)
    return [_source_check(entry, ms) for entry in entries]


def probe_service(settings: Settings, service: str | None) -> str | None:
    """The service whose queries the doctor runs: the one asked for, else the service of
    the first configured SLO, else none (the source checks then only say what is configured)."""
    if service:
        return service
    return settings.impact.slos[0].service if settings.impact.slos else None


async def doctor(settings: Settings, service: str | None = None) -> dict[str, Any]:
    """Run every check concurrently; each reports ok/detail without stopping the others.

    Each configured correlation source gets a check of its own (see `_source_check`),
    probed for `probe_service(settings, service)`."""
    timeout = settings.correlation.timeout_s
    kafka, postgres, sources = await asyncio.gather(
        _check("kafka", _kafka(settings), timeout),
        _check("postgres", _postgres(settings), timeout),
        _sources(settings, probe_service(settings, service)),
    )
    return {"checks": [kafka, postgres, *sources]}
