"""Rebuilding the read models from the log (`warroom replay`), and what a rebuild needs
that the projector does not: reading the events topic at chosen positions (`log_reader`),
decoding fast (`decoding`), folding in bulk (`rebuild`) by segments of partitions in
processes of their own (`segment`), checking the result (`expected`, `verify`), putting it
in the live schema's place (`switch`, `run`), and starting the read models again when
the log went back (`log_reset`).

May import `contracts`, `foundation`, the pure parts of `streams` (the decider's `evolve`,
for `expected`) and the read models (`projections.incidents`, …) whose pure folds and
statements it reuses; the runner imports `switch` and `log_reset` from here, never the
other way round.
"""
