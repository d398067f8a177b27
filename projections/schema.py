"""The read-model schema: numbered migrations applied by `migrate`.

The projector owns this DDL; the gateway only reads. The schema name is a
parameter because `warroom replay` builds into a fresh schema beside the live one.
Migrations are append-only: add a new numbered entry, never edit an applied one.
"""

from __future__ import annotations

from typing import Any

import asyncpg

# One statement list per version; `{s}` is the quoted schema name.
MIGRATION_1 = """
CREATE TABLE IF NOT EXISTS {s}.incidents (
    id uuid PRIMARY KEY,
    title text,
    service text,
    severity text,
    status text,
    version int NOT NULL,
    description text,
    labels jsonb,
    opened_at timestamptz,
    acknowledged_at timestamptz,
    acknowledged_by text,
    mitigated_at timestamptz,
    resolved_at timestamptz,
    updated_at timestamptz,
    time_to_acknowledge_s double precision,
    time_to_mitigate_s double precision,
    time_to_resolve_s double precision,
    alerts_firing int NOT NULL DEFAULT 0,
    correlation jsonb,
    top_hypothesis jsonb,
    impact jsonb,
    opened_by jsonb
);
CREATE INDEX IF NOT EXISTS incidents_opened_idx ON {s}.incidents (opened_at DESC, id DESC);
CREATE INDEX IF NOT EXISTS incidents_status_idx ON {s}.incidents (status);
CREATE INDEX IF NOT EXISTS incidents_service_idx ON {s}.incidents (service);
CREATE INDEX IF NOT EXISTS incidents_severity_idx ON {s}.incidents (severity);

CREATE TABLE IF NOT EXISTS {s}.timeline (
    incident_id uuid NOT NULL,
    version int NOT NULL,
    event_id uuid NOT NULL,
    type text NOT NULL,
    occurred_at timestamptz NOT NULL,
    recorded_at timestamptz NOT NULL,
    actor jsonb NOT NULL,
    summary text NOT NULL,
    data jsonb NOT NULL,
    kafka_partition int NOT NULL,
    kafka_offset bigint NOT NULL,
    PRIMARY KEY (incident_id, version)
);

CREATE TABLE IF NOT EXISTS {s}.notes (
    note_id uuid PRIMARY KEY,
    incident_id uuid NOT NULL,
    text text NOT NULL,
    author text NOT NULL,
    added_at timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS notes_incident_idx ON {s}.notes (incident_id, added_at);

CREATE TABLE IF NOT EXISTS {s}.alerts (
    incident_id uuid NOT NULL,
    fingerprint text NOT NULL,
    alertname text,
    status text NOT NULL,
    labels jsonb NOT NULL,
    annotations jsonb NOT NULL,
    first_seen timestamptz,
    last_seen timestamptz,
    resolved_at timestamptz,
    PRIMARY KEY (incident_id, fingerprint)
);

CREATE TABLE IF NOT EXISTS {s}.correlation_runs (
    run_id uuid PRIMARY KEY,
    incident_id uuid NOT NULL,
    state text NOT NULL,
    outcome text,
    trigger text,
    sources jsonb NOT NULL,
    started_at timestamptz,
    completed_at timestamptz,
    hypotheses jsonb
);
CREATE INDEX IF NOT EXISTS correlation_runs_incident_idx ON {s}.correlation_runs (incident_id, started_at);

CREATE TABLE IF NOT EXISTS {s}.correlation_sources (
    run_id uuid NOT NULL,
    source text NOT NULL,
    state text NOT NULL,
    attempts int NOT NULL DEFAULT 0,
    duration_ms int,
    error text,
    queries jsonb,
    started_at timestamptz,
    completed_at timestamptz,
    PRIMARY KEY (run_id, source)
);

CREATE TABLE IF NOT EXISTS {s}.findings (
    finding_id uuid PRIMARY KEY,
    incident_id uuid NOT NULL,
    run_id uuid NOT NULL,
    source text NOT NULL,
    kind text NOT NULL,
    summary text NOT NULL,
    confidence double precision NOT NULL,
    changed_at timestamptz,
    evidence jsonb NOT NULL,
    after_resolution bool NOT NULL DEFAULT false,
    recorded_at timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS findings_incident_idx ON {s}.findings (incident_id, confidence DESC);

CREATE TABLE IF NOT EXISTS {s}.services (
    name text PRIMARY KEY,
    status text NOT NULL,
    open_incidents int NOT NULL DEFAULT 0,
    worst_severity text,
    updated_at timestamptz
);

CREATE TABLE IF NOT EXISTS {s}.changes (
    change_id bigserial PRIMARY KEY,
    incident_id uuid NOT NULL,
    version int NOT NULL,
    type text NOT NULL,
    service text,
    occurred_at timestamptz NOT NULL,
    payload jsonb NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS changes_incident_idx ON {s}.changes (incident_id, change_id);

CREATE TABLE IF NOT EXISTS {s}.projection_offsets (
    projection text NOT NULL,
    topic text NOT NULL,
    partition int NOT NULL,
    next_offset bigint NOT NULL,
    PRIMARY KEY (projection, topic, partition)
);
"""

# Confirmed root causes: shown on the incident, and scored against correlation's runs.
MIGRATION_2 = """
ALTER TABLE {s}.incidents ADD COLUMN IF NOT EXISTS root_cause jsonb;

CREATE TABLE IF NOT EXISTS {s}.scorecard (
    incident_id uuid PRIMARY KEY,
    opened_at timestamptz,
    runs jsonb NOT NULL,
    service text,
    signal text,
    note text,
    confirmed_by text,
    confirmed_at timestamptz,
    confirmed_version int,
    run_id uuid,
    rank int,
    top1 bool,
    top3 bool,
    first_named_run_id uuid,
    first_named_at timestamptz,
    time_to_first_hypothesis_s double precision
);
CREATE INDEX IF NOT EXISTS scorecard_confirmed_idx ON {s}.scorecard (confirmed_at DESC, incident_id)
    WHERE service IS NOT NULL;
"""

# Findings name the service and signal they are about (events of schema version 3).
MIGRATION_3 = """
ALTER TABLE {s}.findings ADD COLUMN IF NOT EXISTS service text;
ALTER TABLE {s}.findings ADD COLUMN IF NOT EXISTS signal text;
"""


# Which log the read models describe (projections.log_reset): the cluster it was read
# from, and how many times the read models were started again from an empty log.
MIGRATION_4 = """
CREATE TABLE IF NOT EXISTS {s}.log_identity (
    topic text PRIMARY KEY,
    cluster_id text,
    epoch int NOT NULL DEFAULT 1,
    recorded_at timestamptz NOT NULL DEFAULT now()
);
"""

# The delivery ledger (events of schema version 4): one row per attempt or escalation.
MIGRATION_5 = """
CREATE TABLE IF NOT EXISTS {s}.notifications (
    incident_id uuid NOT NULL,
    version int NOT NULL,
    type text NOT NULL,
    notification_id uuid,
    receiver text,
    kind text,
    attempt int,
    status int,
    level int NOT NULL,
    trigger text NOT NULL,
    error text,
    will_retry bool,
    receivers text[],
    occurred_at timestamptz NOT NULL,
    PRIMARY KEY (incident_id, version)
);
"""

# Silences (projections.silences): one row per silence or maintenance window, and what each swallowed.
MIGRATION_6 = """
CREATE TABLE IF NOT EXISTS {s}.silences (
    silence_id uuid PRIMARY KEY,
    matchers jsonb NOT NULL,
    starts_at timestamptz,
    ends_at timestamptz,
    comment text,
    window_name text,
    created_by text,
    created_at timestamptz,
    expired_at timestamptz,
    expired_by text,
    swallowed int NOT NULL DEFAULT 0,
    last_swallowed_at timestamptz,
    version int NOT NULL
);
CREATE INDEX IF NOT EXISTS silences_ends_idx ON {s}.silences (ends_at DESC, silence_id);
CREATE TABLE IF NOT EXISTS {s}.silenced_alerts (
    silence_id uuid NOT NULL,
    version int NOT NULL,
    fingerprint text NOT NULL,
    alertname text,
    labels jsonb NOT NULL,
    starts_at timestamptz NOT NULL,
    silenced_at timestamptz NOT NULL,
    PRIMARY KEY (silence_id, version)
);
"""

MIGRATIONS: tuple[tuple[int, str], ...] = (
    (1, MIGRATION_1), (2, MIGRATION_2), (3, MIGRATION_3), (4, MIGRATION_4), (5, MIGRATION_5),
    (6, MIGRATION_6))
"""(version, DDL) in order; `migrate` applies those not yet recorded."""

CREATE_MIGRATIONS_TABLE = """
CREATE SCHEMA IF NOT EXISTS {s};
CREATE TABLE IF NOT EXISTS {s}.schema_migrations (
    version int PRIMARY KEY,
    applied_at timestamptz NOT NULL DEFAULT now()
);
"""

# One lock per schema name, so building a replay schema never waits on the live one.
LOCK = "SELECT pg_advisory_xact_lock(hashtextextended('warroom.migrate:' || $1, 0))"


def quote_ident(name: str) -> str:
    """`name` as a PostgreSQL identifier, safe to splice into SQL."""
    if not name or "\x00" in name:
        raise ValueError(f"invalid identifier: {name!r}")
    return '"' + name.replace('"', '""') + '"'


async def migrate(conn_or_pool: asyncpg.Connection | asyncpg.Pool, schema: str) -> list[int]:
    """Bring `schema` up to the newest migration; return the versions applied now.

    Safe to call from any number of processes at once: the work runs in one
    transaction under an advisory lock, and already-applied versions are skipped.
    """
    if isinstance(conn_or_pool, asyncpg.Pool):
        async with conn_or_pool.acquire() as conn:
            return await _migrate(conn, schema)
    return await _migrate(conn_or_pool, schema)


async def _migrate(conn: asyncpg.Connection, schema: str) -> list[int]:
    s = quote_ident(schema)
    applied_now: list[int] = []
    async with conn.transaction():
        await conn.execute(LOCK, schema)
        await conn.execute(CREATE_MIGRATIONS_TABLE.format(s=s))
        done = {r["version"] for r in await conn.fetch(f"SELECT version FROM {s}.schema_migrations")}
        for version, ddl in MIGRATIONS:
            if version in done:
                continue
            await conn.execute(ddl.format(s=s))
            await conn.execute(f"INSERT INTO {s}.schema_migrations (version) VALUES ($1)", version)
            applied_now.append(version)
    return applied_now


def qualified(schema: str, sql: str, **extra: Any) -> str:
    """`sql` with `{s}` replaced by the quoted schema name (statements are templates)."""
    return sql.format(s=quote_ident(schema), **extra)
