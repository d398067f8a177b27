"""Dead letters: what goes to `<prefix>.dlq` when a message cannot be processed.

The original bytes travel base64-encoded (and as text when they are UTF-8), with the
reason and where they came from, so a person can see what was wrong and replay them.
"""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime

Headers = list[tuple[str, bytes]]


def dead_letter(
    original: bytes | None,
    key: bytes | None,
    topic: str,
    partition: int,
    offset: int,
    reason: str,
    at: datetime | None = None,
) -> tuple[bytes | None, bytes, Headers]:
    """The DLQ record `(key, value, headers)` for a message that could not be processed.

    The value is JSON: reason, source topic/partition/offset, `at` (RFC 3339 UTC; now
    unless given), the original key as text, and the original value as base64 plus
    text when it decodes as UTF-8. Keyed like the original message.
    """
    when = (at or datetime.now(UTC)).astimezone(UTC)
    letter = {
        "reason": reason,
        "topic": topic,
        "partition": partition,
        "offset": offset,
        "at": when.isoformat().replace("+00:00", "Z"),
        "key": _text(key),
        "original_base64": base64.b64encode(original).decode() if original is not None else None,
        "original_text": _text(original),
    }
    headers = [
        ("warroom-reason", reason.encode()[:1000]),
        ("warroom-source", f"{topic}/{partition}/{offset}".encode()),
    ]
    return key, json.dumps(letter, ensure_ascii=False).encode(), headers


def _text(raw: bytes | None) -> str | None:
    if raw is None:
        return None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return None
