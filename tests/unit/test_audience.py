"""The change feed offers a change to exactly the subscribers whose filter matches it."""

from __future__ import annotations

import asyncio
import uuid

from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.audience import Audience
from gateway.changes import Change, Subscription
from projections.replay.log_reset import RESET

INCIDENTS = [uuid.UUID(int=n) for n in range(1, 4)]
SERVICES = ["checkout", "payments", "search"]

incident = st.none() | st.sampled_from(INCIDENTS)
service = st.none() | st.sampled_from(SERVICES)
filters = st.lists(st.tuples(incident, service), max_size=30)
changes = st.builds(
    lambda i, s, reset: Change(1, i, 1 if i else None, RESET if reset else "IncidentOpened", s, "{}"),
    incident, service, st.booleans(),
)


def subscription(incident_id, service_name) -> Subscription:
    return Subscription(incident_id, service_name, asyncio.Queue(4))


@settings(max_examples=300, deadline=None)
@given(filters, st.lists(st.integers(0, 29), max_size=10), changes)
def test_offered_to_exactly_the_matching_subscribers(wanted, leaving, change) -> None:
    subs = [subscription(i, s) for i, s in wanted]
    audience = Audience()
    for sub in subs:
        audience.add(sub)
    audience.add(subs[0]) if subs else None  # adding twice keeps one
    gone = {id(subs[n]) for n in leaving if n < len(subs)}
    for sub in subs:
        if id(sub) in gone:
            audience.discard(sub)
            audience.discard(sub)  # discarding twice is harmless
    staying = [sub for sub in subs if id(sub) not in gone]

    offered = audience.of(change, everyone=change.type == RESET)
    assert sorted(map(id, offered)) == sorted(id(s) for s in staying if s.matches(change))
    assert len(audience) == len(staying)
    assert sorted(map(id, audience)) == sorted(map(id, staying))
