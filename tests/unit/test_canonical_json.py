"""The fast canonical form writes exactly the bytes of the reference form, or its errors.

Every hash already in the log was computed over `reference_bytes` (Python's `json`), so
`canonical_bytes` must never differ from it: checked over the stored events, over float
edge cases where orjson and Python disagree, and over generated JSON values.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from contracts.events import EventEnvelope
from foundation.canonical_json import canonical_bytes, reference_bytes
from foundation.chain import digest
from tests.unit.test_golden_events import WRITTEN

DATA = Path(__file__).parents[1] / "data" / "events"

FLOATS = [
    1e-05, 0.00001, 1e-4, 1e-7, 5e-324, 1e16, 1e+16, 1e15, 123456789012345678.0, 1e22,
    1.7976931348623157e308, -0.0, 0.0, 0.1 + 0.2, 0.95, 1.5, 100.0, -2.5e-10, 2.0**53,
]
INTS = [0, -1, 2**53 + 1, 2**63 - 1, -(2**63), 2**63, 2**64 - 1, 2**64, -(2**63) - 1, 10**40]
TEXTS = ["", "é", "日本", "😀", '"\\', "\x00\x1f\x7f", "\n\r\t\b\f", "\u2028\u2029", "\ufeff", "</script>"]


def test_stored_events_hash_as_they_were_written() -> None:
    stored = [EventEnvelope.model_validate_json(raw) for raw in WRITTEN]
    for path in sorted(DATA.glob("*.json")):
        stored += [EventEnvelope.model_validate(item) for item in json.loads(path.read_text())]
    assert len(stored) > len(WRITTEN)
    for event in stored:
        fields = event.model_dump(mode="json", by_alias=True, exclude={"hash"})
        assert canonical_bytes(fields) == reference_bytes(fields)
        assert digest(event) == event.hash


@pytest.mark.parametrize("value", FLOATS + INTS + TEXTS, ids=repr)
def test_edge_values_alone_and_nested(value: object) -> None:
    for shaped in (value, [value], {"k": value, "a": [1, {"z": value}]}):
        assert canonical_bytes(shaped) == reference_bytes(shaped)


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf], ids=repr)
def test_nan_and_infinities_are_refused_as_before(value: float) -> None:
    with pytest.raises(ValueError):
        reference_bytes({"x": value})
    with pytest.raises(ValueError):
        canonical_bytes({"x": value})


def test_what_the_reference_cannot_encode_fails_the_same_way() -> None:
    for bad in ({"s": "\ud800"}, {"o": object()}):
        with pytest.raises(Exception) as reference:
            reference_bytes(bad)
        with pytest.raises(type(reference.value)):
            canonical_bytes(bad)


def test_non_string_keys_and_subclasses_take_the_reference_form() -> None:
    class Text(str):
        pass

    for value in ({1: "a", 2: "b"}, {True: None}, {"t": Text("x")}, {"nested": {2.5: 1}}):
        assert canonical_bytes(value) == reference_bytes(value)


def test_keys_sort_by_code_point_like_python() -> None:
    value = {"b": 1, "a": 2, "é": 3, "z": 4, "😀": 5, "\uffff": 6, "A": 7, "": 8}
    assert canonical_bytes(value) == reference_bytes(value)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(), inner, max_size=5),
    max_leaves=30,
)


@settings(max_examples=400, deadline=None)
@given(json_values)
def test_generated_values_encode_identically(value: object) -> None:
    try:
        expected = reference_bytes(value)
    except UnicodeEncodeError:  # lone surrogates in generated text
        with pytest.raises(UnicodeEncodeError):
            canonical_bytes(value)
        return
    assert canonical_bytes(value) == expected
