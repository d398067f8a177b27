"""One Faust codec for our pydantic models, so no schema is ever written twice.

Faust picks a codec by name per topic or table (`value_serializer=...`). Each name below
binds the same codec class to one model (or union adapter): values are encoded with
`model_dump_json(by_alias=True)` and decoded with validation, exactly as every other
reader of these topics does.
"""

from __future__ import annotations

from typing import Any

from faust.serializers import codecs
from pydantic import BaseModel, TypeAdapter

from contracts.commands import COMMAND_ADAPTER
from contracts.events import EventEnvelope
from contracts.outcomes import CommandOutcome
from streams.applied import Applied, encode_applied

COMMAND = "warroom.command"
EVENT = "warroom.event"
OUTCOME = "warroom.outcome"
INCIDENT_STATE = "warroom.incident"


class PydanticCodec(codecs.Codec):
    """JSON bytes <-> the pydantic `model` (a model class or a `TypeAdapter`)."""

    def __init__(self, children: tuple | None = None, *, model: Any) -> None:
        super().__init__(children, model=model)
        self._adapter = model if isinstance(model, TypeAdapter) else TypeAdapter(model)

    def _dumps(self, obj: Any) -> bytes:
        if isinstance(obj, BaseModel):
            # `model_dump_json(by_alias=True).encode()` without decoding the bytes to a str
            # and encoding them back (every event and outcome the decider sends).
            return obj.__pydantic_serializer__.to_json(obj, by_alias=True)
        return self._adapter.dump_json(obj, by_alias=True)

    def _loads(self, s: bytes) -> Any:
        return self._adapter.validate_json(s)


class AppliedCodec(PydanticCodec):
    """The table's `Applied` values, written by `encode_applied` (the same bytes, faster)."""

    def __init__(self, children: tuple | None = None, *, model: Any = Applied) -> None:
        super().__init__(children, model=model)

    def _dumps(self, obj: Any) -> bytes:
        return encode_applied(obj) if type(obj) is Applied else super()._dumps(obj)


_MODELS: dict[str, Any] = {
    COMMAND: COMMAND_ADAPTER,
    EVENT: EventEnvelope,
    OUTCOME: CommandOutcome,
    INCIDENT_STATE: Applied,
}


def register_codecs() -> None:
    """Make the codec names above known to Faust (idempotent)."""
    for name, model in _MODELS.items():
        if name not in codecs.codecs:
            codecs.register(name, AppliedCodec() if model is Applied else PydanticCodec(model=model))
