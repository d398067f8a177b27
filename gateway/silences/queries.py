"""Read-model queries of the silences endpoints (tables of `projections.silences`)."""

COLUMNS = """silence_id, matchers::text AS matchers, starts_at, ends_at, comment, window_name, created_by,
created_at, expired_at, expired_by, swallowed, last_swallowed_at, version"""

LIST_SILENCES = f"""
select {COLUMNS} from silences
where $1::bool or (expired_at is null and (ends_at is null or ends_at > now()))
order by (ends_at is null), ends_at desc, silence_id
limit $2
"""

SELECT_SILENCE = f"select {COLUMNS} from silences where silence_id = $1"

RECENT_SWALLOWED = """
select silence_id, fingerprint, alertname, labels::text as labels, starts_at, silenced_at
from (select *, row_number() over (partition by silence_id order by version desc) as n
      from silenced_alerts where silence_id = any($1::uuid[])) recent
where n <= $2
order by silence_id, silenced_at desc
"""

SELECT_MANY = f"select {COLUMNS} from silences where silence_id = any($1::uuid[])"
