"""PostgreSQL read models built from the event log (SPEC §6); the projector owns their schema.

- One module per read model (`incidents`, `timeline`, `notes`, `alerts`, `correlation`,
  `findings`, `notifications`, `scorecard`, `services`, the change feed `changes`, the
  `offsets` a batch covers): its DDL, its statements and its pure fold or row, side by side.
- `apply`: what one batch does to every read model, in one transaction with its offsets;
  a new read model is one more line there and its DDL one more entry in `schema`.
- `schema` (numbered migrations naming each module's DDL), `logged` (an event with its log
  position, and the JSON conventions), `rows` (statement templates and the bulk upsert),
  `rejects` (what is not an event), `synthetic` (a valid synthetic log for tests and benches).
- `runner/`: the projector process (batches, offsets, reconnects), apart from what is applied.
- `replay/`: rebuild, verify and switch (`warroom replay`), and the log reset.
- `history/`: an incident's audit and postmortem, with its charts and graph, from its log.

May import `contracts`, `foundation` and the pure parts of `streams` (the decider's fold,
for `replay.expected`); never `gateway` or `warroom`.
"""
