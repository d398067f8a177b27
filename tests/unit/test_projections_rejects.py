"""What the projector refuses to read, and the reason it gives."""

from __future__ import annotations

import json

import pytest

from foundation.dead_letters import Poison
from projections.rejects import decode
from testing.synthetic import synthetic_log


@pytest.mark.parametrize(("value", "reason"), [
    (b"{not json", "invalid JSON"),
    (b'{"type": "IncidentOpened"}', "invalid event"),
    (None, "empty record"),
])
def test_unreadable_records_say_why(value, reason):
    with pytest.raises(Poison) as err:
        decode(value)
    assert err.value.reason.startswith(reason)


def test_bad_hash_is_refused():
    good = next(synthetic_log(1)).model_dump(mode="json", by_alias=True)
    with pytest.raises(Poison, match="hash"):
        decode(json.dumps({**good, "hash": "xyz"}).encode())
