"""Request field types the log and the read models can hold.

PostgreSQL text and jsonb refuse NUL characters, and unpaired surrogates cannot be
encoded as UTF-8: such input must be refused at the door (422), not poison the log.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, StringConstraints


# Documents the rule in the OpenAPI schema; `_storable` enforces it (and the surrogates).
NO_NUL = r"^[^\x00]*$"


def _storable(value: str) -> str:
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("must be valid Unicode (no unpaired surrogates)") from None
    return value


def text(min_length: int = 0, max_length: int = 20_000) -> type[str]:
    """A str of bounded length that PostgreSQL and JSON can store."""
    return Annotated[  # type: ignore[return-value]
        str, StringConstraints(min_length=min_length, max_length=max_length, pattern=NO_NUL),
        AfterValidator(_storable)
    ]


Name = text(1, 200)
Title = text(1, 300)
Reason = text(0, 2_000)
LongText = text(1, 20_000)
LabelKey = text(1, 200)
LabelValue = text(0, 2_000)
MAX_INT4 = 2**31 - 1
