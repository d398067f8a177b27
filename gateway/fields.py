"""Request field types the log and the read models can hold.

PostgreSQL text and jsonb refuse NUL characters, and unpaired surrogates cannot be
encoded as UTF-8: such input must be refused at the door (422), not poison the log.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator, Field, StringConstraints

from contracts.common import UtcDatetime

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

Labels = Annotated[dict[LabelKey, LabelValue], Field(json_schema_extra={
    "propertyNames": {"pattern": NO_NUL, "minLength": 1, "maxLength": 200}})]
"""Labels or annotations: keys and values PostgreSQL and JSON can store (documented for keys too)."""


_RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})")


def _rfc3339_text(value: Any) -> Any:
    # pydantic would take a number (or a numeric string) as Unix seconds; the schema says
    # RFC 3339, so that is all an instant may be.
    if isinstance(value, datetime):
        return value
    if not isinstance(value, str) or not _RFC3339.fullmatch(value):
        raise ValueError("must be an RFC 3339 date-time with an offset, e.g. 2026-01-02T03:04:05Z")
    return value


Instant = Annotated[UtcDatetime, BeforeValidator(_rfc3339_text)]
"""An RFC 3339 instant with an offset, as the schema documents it: never a number."""


def _whole_number(value: Any) -> Any:
    # JSON Schema's integer includes 3.0; text ("1") and booleans are not numbers at all.
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError("must be an integer")
    if isinstance(value, float):
        if not value.is_integer():
            raise ValueError("must be an integer")
        return int(value)
    return value


def whole_number(ge: int, le: int) -> type[int]:
    """An integer in [ge, le]: a JSON integer, or a number with no fractional part."""
    return Annotated[int, Field(ge=ge, le=le), BeforeValidator(_whole_number)]  # type: ignore[return-value]
