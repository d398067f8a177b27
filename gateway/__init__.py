"""The HTTP gateway: commands in, read-model queries and the change stream out.

Runs no DDL (it waits for the projector's schema). `incidents/`, `silences/`,
`services/`, `scorecard/` and `topology/` are one resource each (routes, bodies,
queries); beside them the command path (`commands`), the change stream (`stream`,
`changes`), auth, problems and the dashboard's static files. May import `contracts`,
`foundation`, the read models and history of `projections` and the pure rules of
`streams` (reading an alert, a stream's state as of a moment, the service graph); never
`warroom`."""
