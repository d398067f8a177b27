"""What a test may expect of a dead letter, whatever the size of what it holds."""

from __future__ import annotations

import base64
import hashlib

ORIGINAL_MAX = 1_040_000
"""About the largest record a broker with default limits (1 MiB) accepts from a producer."""


def poison(size: int, fill: bytes = b"x") -> bytes:
    """A record of `size` bytes that is not JSON (but is text: its letter would hold it twice)."""
    return (b"<" + fill * size)[:size]


def assert_holds(letter: dict, original: bytes) -> None:
    """The letter names all of `original` (size, SHA-256) and keeps a prefix of it, truncated
    only when the whole would not have fit."""
    assert (letter["size"], letter["sha256"]) == (len(original), hashlib.sha256(original).hexdigest())
    kept = base64.b64decode(letter["original_base64"])
    assert original.startswith(kept)
    assert letter["truncated"] is (len(kept) < len(original))
    if letter["truncated"]:
        assert letter["kept_bytes"] == len(kept) > 100_000
