"""The stream processes: the worker (decider, intake and correlation as Faust agents)
and the notifier.

- The decider: `incident` and `silence` (pure `decide`/`evolve` for each kind of stream),
  `decider` (which of them a command goes to), `incident_log` (decided facts to the log
  and back), `applied` (what the worker keeps per stream); `worker` runs it and
  publishes each silence's rule on the silences topic.
- The intake: `alert_reading` (what an alert says, and the notices), `intake` (a group of
  alerts and how it reacts), `silence_book` (the silences it consults), `intake_agents`.
- Correlation: `correlation/` (the sources and a run), `correlation_agents`.
- Paging: `paging` (who is owed a page, pure), `page_formats`, `delivery`, and `notifier`,
  a process of its own outside Faust.
- The shell around the agents: `partition` (the one partition shell every batch agent is
  a pure step in), `app` (the Faust app and its tables), `codec`, `fetch_wait`, `log_watch`.

Owns the `incidents`, `intake-groups` and `intake-watched` tables and is the only writer
of the events topic. May import `contracts` and `foundation`; never `projections`,
`gateway` or `warroom` (which import its pure rules).
"""
