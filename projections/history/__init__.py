"""An incident's history read from its log: the audit of its hash chain, the postmortem
(data, Markdown, figures) and the pictures the dashboard shares with it (evidence
charts, the incident's service graph, the SVG they are written with).

All pure: given an incident's events (or records), they answer without a database or a
broker; `warroom postmortem` and the gateway fetch the events. May import `contracts`,
`foundation` and the read models' pure folds (`projections.incidents`, `.timeline`, …),
so a postmortem says what the dashboard said; nothing here imports the runner or replay.
"""
