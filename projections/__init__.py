"""PostgreSQL read models built from the event log (SPEC §6).

`runner` consumes `<prefix>.events` and hands batches to `apply`, which applies
each batch to every read model in one transaction with the offsets it covers.
One module per read model (`incidents`, `timeline`, `notes`, `alerts`,
`correlation`, `findings`, `services`, `changes`) keeps its SQL beside its code;
`schema.migrate` creates the tables: the projector owns the schema.

May import `contracts`, `foundation` and the pure parts of `streams` (the decider's fold,
for the independent check of `expected`); never `warroom`.
"""
