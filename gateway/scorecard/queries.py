"""Read-model SQL of the scorecard endpoint (rows with a confirmed cause; see projections.scorecard).

The cause itself is the incident's `root_cause`, written in the same transaction as its score."""

from __future__ import annotations

SELECT_TOTALS = """
select count(*) as n,
       count(*) filter (where s.top1) as top1_hits,
       count(*) filter (where s.top3) as top3_hits,
       count(s.time_to_first_hypothesis_s) as named,
       percentile_cont(0.5) within group (order by s.time_to_first_hypothesis_s) as median_s
from scorecard s join incidents i on i.id = s.incident_id
where s.service is not null and ($1::text is null or i.service = $1)
"""

# Newest confirmation first; served by scorecard_confirmed_idx.
SELECT_SCORED = """
select s.incident_id, i.title, i.service, i.status, s.opened_at, i.root_cause,
       s.run_id, s.rank, s.top1, s.top3, s.first_named_run_id, s.first_named_at,
       s.time_to_first_hypothesis_s
from scorecard s join incidents i on i.id = s.incident_id
where s.service is not null and ($1::text is null or i.service = $1)
order by s.confirmed_at desc, s.incident_id desc
limit $2
"""
