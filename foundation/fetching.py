"""How long a consumer lets a fetch wait for records, for every process that consumes.

Tansu (the embedded broker) answers a waiting fetch only once the wait is over, so the
wait is paid on every hop of a command's round trip; Apache Kafka answers as soon as a
record arrives, so there it only bounds idle polling (see `streams.fetch_wait`)."""

FETCH_WAIT_MS = 20
"""Per partition leader at most 1,000 / 20 = 50 empty fetches a second while idle."""
