"""Opaque keyset cursors for newest-first listings: (opened_at, id) of the last item."""

from __future__ import annotations

import base64
import binascii
from datetime import datetime
from uuid import UUID

_VERSION = "1"


class CursorError(ValueError):
    """The cursor was not made by this API (or was damaged on the way)."""


def encode(opened_at: datetime, incident_id: UUID) -> str:
    """A URL-safe token that resumes a listing right after this item."""
    raw = f"{_VERSION}|{opened_at.isoformat()}|{incident_id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode(cursor: str) -> tuple[datetime, UUID]:
    """The position a cursor names; CursorError if it is not one of ours."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        version, opened_at, incident_id = raw.split("|")
        if version != _VERSION:
            raise CursorError("cursor from another version")
        when = datetime.fromisoformat(opened_at)
        if when.tzinfo is None:
            raise CursorError("cursor without a timezone")
        return when, UUID(incident_id)
    except CursorError:
        raise
    except (ValueError, UnicodeDecodeError, binascii.Error) as err:
        raise CursorError(f"not a valid cursor: {err}") from None
