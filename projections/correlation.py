"""Correlation progress read model: each run, and each source's state within it.

A source is `pending` from the run's start, `running` once queried, then one of
the outcomes `succeeded|failed|no_data|unavailable|timed_out`, so a dashboard
can show at any moment what is still being waited for and what failed.
"""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg

from contracts import events as ev
from projections.logged import LoggedEvent, execute_in_order, to_json
from projections.schema import qualified

START_RUN = """
WITH run AS (
    INSERT INTO {s}.correlation_runs (run_id, incident_id, state, outcome, trigger, sources,
                                      started_at, completed_at, hypotheses)
    VALUES ($1, $2, 'running', NULL, $3, $4::jsonb, $5, NULL, NULL)
    ON CONFLICT (run_id) DO NOTHING
)
INSERT INTO {s}.correlation_sources (run_id, source, state, attempts)
SELECT $1, source, 'pending', 0 FROM unnest($6::text[]) AS source
ON CONFLICT (run_id, source) DO NOTHING
"""

START_SOURCE = """
WITH source AS (
    INSERT INTO {s}.correlation_sources (run_id, source, state, attempts, started_at)
    VALUES ($1, $2, 'running', 0, $3)
    ON CONFLICT (run_id, source) DO UPDATE SET state = 'running', started_at = EXCLUDED.started_at
)
UPDATE {s}.correlation_runs SET sources = jsonb_set(sources, ARRAY[$2::text], '"running"')
WHERE run_id = $1
"""

COMPLETE_SOURCE = """
WITH source AS (
    INSERT INTO {s}.correlation_sources (run_id, source, state, attempts, duration_ms, error,
                                         queries, completed_at)
    VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb, $8)
    ON CONFLICT (run_id, source) DO UPDATE SET
        state = EXCLUDED.state, attempts = EXCLUDED.attempts,
        duration_ms = EXCLUDED.duration_ms, error = EXCLUDED.error,
        queries = EXCLUDED.queries, completed_at = EXCLUDED.completed_at
)
UPDATE {s}.correlation_runs SET sources = jsonb_set(sources, ARRAY[$2::text], to_jsonb($3::text))
WHERE run_id = $1
"""

COMPLETE_RUN = """
UPDATE {s}.correlation_runs
SET state = 'completed', outcome = $2, completed_at = $3, hypotheses = $4::jsonb
WHERE run_id = $1
"""


async def apply_batch(conn: asyncpg.Connection, schema: str, events: Sequence[LoggedEvent]) -> None:
    """Apply the correlation events among `events`, in log order."""
    start_run, start_source = qualified(schema, START_RUN), qualified(schema, START_SOURCE)
    complete_source, complete_run = qualified(schema, COMPLETE_SOURCE), qualified(schema, COMPLETE_RUN)
    statements: list[tuple[str, tuple]] = []
    for item in events:
        e, d = item.event, item.event.data
        match d:
            case ev.CorrelationStarted():
                pending = to_json({source: "pending" for source in d.sources})
                statements.append((start_run, (d.run_id, e.incident_id, d.trigger, pending,
                                               e.occurred_at, list(d.sources))))
            case ev.CorrelationSourceStarted():
                statements.append((start_source, (d.run_id, d.source, e.occurred_at)))
            case ev.CorrelationSourceCompleted():
                statements.append((complete_source, (d.run_id, d.source, d.outcome, d.attempts,
                                                     d.duration_ms, d.error, to_json(d.queries),
                                                     e.occurred_at)))
            case ev.CorrelationCompleted():
                statements.append((complete_run, (d.run_id, d.outcome, e.occurred_at,
                                                  to_json(item.data["hypotheses"]))))
    await execute_in_order(conn, statements)
