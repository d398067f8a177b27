"""The stream worker: the decider, the intake and correlation, as Faust agents.

Owns the `incidents`, `intake-groups` and `intake-watched` tables and is the only writer
of the events topic. Every batch agent is a pure step in one partition shell
(`streams.partition`). May import `contracts` and `foundation`; never `warroom`.
"""
