"""Dead letters: what goes to `<prefix>.dlq` when a message cannot be processed.

The original bytes travel base64-encoded (and as text when they are UTF-8), with the
reason, where they came from, their size and SHA-256, so a person can see what was
wrong and replay them.

A letter is never larger than the limit it is built for (what the DLQ topic and the
producer accept, `letter_limit`): a message that cannot be kept whole, twice over, is
kept as its first bytes, marked `truncated`, and its size and digest still name the
whole of it. So no message is too large to be dead-lettered, and none can stop the
process that reads it.
"""

from __future__ import annotations

import base64
import hashlib
import json
from datetime import UTC, datetime
from typing import Any

Headers = list[tuple[str, bytes]]


class Poison(Exception):
    """A record that cannot be processed; `reason` goes to the DLQ with it."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


HEADROOM = 4096
"""Bytes of a record beside its value: the key (at most KEY_MAX), headers, batch overhead."""
KEY_MAX = 1024
"""A longer original key is replaced by its SHA-256 (hex): a key names a partition, not data."""
REASON_MAX = 2000
"""Characters of the reason kept (a reason may quote the message it is about)."""


def letter_limit(max_message_bytes: int) -> int:
    """The largest letter value a record of at most `max_message_bytes` can carry."""
    return max_message_bytes - HEADROOM


def dead_letter(
    original: bytes | None,
    key: bytes | None,
    topic: str,
    partition: int,
    offset: int,
    reason: str,
    at: datetime | None = None,
    *,
    limit: int,
) -> tuple[bytes | None, bytes, Headers]:
    """The DLQ record `(key, value, headers)` for a message that could not be processed.

    The value is JSON of at most `limit` bytes: reason, source topic/partition/offset, `at`
    (RFC 3339 UTC; now unless given), the original key as text, the original's `size`
    and `sha256`, and the original value as base64 plus text when it decodes as UTF-8.
    When that does not fit, the two hold its first `kept_bytes` bytes (the text only if it
    still fits; `truncated` when bytes were left out). Keyed like the original message.
    """
    when = (at or datetime.now(UTC)).astimezone(UTC)
    reason = reason if len(reason) <= REASON_MAX else reason[: REASON_MAX - 1] + "…"
    if key is not None and len(key) > KEY_MAX:
        key = hashlib.sha256(key).hexdigest().encode()
    letter: dict[str, Any] = {
        "reason": reason,
        "topic": topic,
        "partition": partition,
        "offset": offset,
        "at": when.isoformat().replace("+00:00", "Z"),
        "key": _text(key),
        "size": len(original) if original is not None else None,
        "sha256": hashlib.sha256(original).hexdigest() if original is not None else None,
        "truncated": False,
        "original_base64": base64.b64encode(original).decode() if original is not None else None,
        "original_text": _text(original),
    }
    headers = [
        ("warroom-reason", reason.encode()[:1000]),
        ("warroom-source", f"{topic}/{partition}/{offset}".encode()),
    ]
    if original is not None:
        headers.append(("warroom-original-size", str(len(original)).encode()))
        headers.append(("warroom-original-sha256", letter["sha256"].encode()))
    return key, _bounded(letter, original, limit), headers


def _bounded(letter: dict[str, Any], original: bytes | None, limit: int) -> bytes:
    value = _encode(letter)
    if len(value) <= limit or original is None:
        return value
    # Room for the original once everything else is written (both fields empty for now).
    letter.update(truncated=True, kept_bytes=len(original), original_base64="", original_text="")
    room = limit - len(_encode(letter))
    # Base64 takes 4 bytes per 3; the text at least one per byte: try both first.
    kept = min(len(original), max(0, room * 3 // 7))
    letter.update(kept_bytes=kept, truncated=kept < len(original), original_base64=_b64(original[:kept]),
                  original_text=_text(original[:kept], cut=True))
    value = _encode(letter)
    if len(value) <= limit:
        return value
    # The text took more than a byte per byte (escapes): keep base64 alone, which fits exactly.
    letter.update(original_text=None, original_base64="")
    kept = min(len(original), max(0, (limit - len(_encode(letter)) - 4) * 3 // 4))
    letter.update(kept_bytes=kept, truncated=kept < len(original), original_base64=_b64(original[:kept]))
    return _encode(letter)


def _encode(letter: dict[str, Any]) -> bytes:
    return json.dumps(letter, ensure_ascii=False).encode()


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def _text(raw: bytes | None, cut: bool = False) -> str | None:
    """`raw` as UTF-8 text, or None; with `cut`, a character split at the end is dropped."""
    if raw is None:
        return None
    for trim in range(4 if cut else 1):
        try:
            return raw[: len(raw) - trim].decode("utf-8")
        except UnicodeDecodeError:
            continue
    return None
