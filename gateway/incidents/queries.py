"""Read-model SQL of the incident endpoints (the pool's search_path is the read-model schema)."""

from __future__ import annotations

INCIDENT_COLUMNS = """
id, title, service, severity, status, version, description, labels, opened_at, opened_by,
acknowledged_at, acknowledged_by, mitigated_at, resolved_at, updated_at,
time_to_acknowledge_s, time_to_mitigate_s, time_to_resolve_s, alerts_firing,
correlation, top_hypothesis, impact, root_cause
"""

SELECT_INCIDENT = f"select {INCIDENT_COLUMNS} from incidents where id = $1"

SELECT_VERSION = "select id, version from incidents where id = $1"

# Keyset pagination, newest first; served by the (opened_at desc, id desc) index.
LIST_INCIDENTS = f"""
select {INCIDENT_COLUMNS} from incidents
where ($1::text[] is null or status = any($1))
  and ($2::text is null or service = $2)
  and ($3::text[] is null or severity = any($3))
  and ($4::timestamptz is null or (opened_at, id) < ($4, $5::uuid))
order by opened_at desc, id desc
limit $6
"""

SELECT_TIMELINE = """
select version, event_id, type, occurred_at, recorded_at, actor, summary, data
from timeline where incident_id = $1 and version > $2
order by version limit $3
"""

SELECT_EVENT_POSITIONS = """
select version, kafka_partition, kafka_offset
from timeline where incident_id = $1 and version > $2
order by version limit $3
"""

SELECT_FINDINGS = """
select finding_id, run_id, source, kind, summary, confidence, changed_at, evidence,
       after_resolution, recorded_at, service, signal
from findings where incident_id = $1
order by confidence desc, changed_at asc nulls last, recorded_at asc
"""

SELECT_NOTIFICATIONS = """
select type, notification_id, receiver, kind, attempt, status, level, trigger, error, will_retry,
       receivers, occurred_at, version
from notifications where incident_id = $1
order by version
"""

SELECT_RUNS = """
select run_id, state, outcome, trigger, started_at, completed_at, hypotheses
from correlation_runs where incident_id = $1
order by started_at desc nulls last
"""

SELECT_RUN_SOURCES = """
select run_id, source, state, attempts, duration_ms, error, queries, started_at, completed_at
from correlation_sources where run_id = any($1::uuid[])
order by source
"""

# A finding, and every finding of the same run (the deploys and restarts its chart marks).
SELECT_FINDING_AND_RUN = """
select finding_id, run_id, source, kind, changed_at, evidence, service, signal
from findings
where incident_id = $1
  and (finding_id = $2
       or run_id = (select run_id from findings where incident_id = $1 and finding_id = $2))
"""

SELECT_GRAPH_FACTS = "select service, root_cause, opened_at from incidents where id = $1"
