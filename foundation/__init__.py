"""What the stream processors, the projector and the gateway must agree on, defined once.

Owns the settings models (`settings`, with the `templates` and `topology` rules they
check), the topics (`topics`), the hash chain (`chain`), the dead-letter format
(`dead_letters`), the identity of a Kafka log (`log_identity`) and the change-feed
protocol between projector and gateways (`change_feed`).

May import `contracts` and third-party libraries only; `streams`, `projections`,
`gateway` and the `warroom` CLI import it, never the other way round.
"""
