"""Keyset cursors: opaque, round-tripping, and refusing what they did not make."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from uuid import UUID, uuid4

import pytest

from gateway import cursor


@pytest.mark.parametrize("when", [
    datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC),
    datetime(1999, 12, 31, 23, 59, 59, tzinfo=timezone(timedelta(hours=-7))),
])
def test_a_cursor_round_trips(when: datetime) -> None:
    incident = uuid4()
    token = cursor.encode(when, incident)
    assert cursor.decode(token) == (when, incident)
    assert token.isascii() and "=" not in token and "/" not in token and "+" not in token


@pytest.mark.parametrize("token", [
    "", "x", "!!!", "bm90IGEgY3Vyc29y",  # "not a cursor"
    cursor.encode(datetime(2026, 1, 1, tzinfo=UTC), UUID("b1b8b9a8-b0a8-454b-909c-99a76a394800"))[:-3],
    "Mnwy MDI2",
])
def test_foreign_cursors_are_refused(token: str) -> None:
    with pytest.raises(cursor.CursorError):
        cursor.decode(token)


def test_a_naive_timestamp_is_refused() -> None:
    import base64

    token = base64.urlsafe_b64encode(f"1|2026-01-01T00:00:00|{uuid4()}".encode()).decode()
    with pytest.raises(cursor.CursorError):
        cursor.decode(token)
