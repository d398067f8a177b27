"""What the worker keeps per stream in its table (`incidents`), between commands."""

from __future__ import annotations

from streams.incident import Frozen, Incident
from streams.silence import Silence


class Applied(Frozen):
    """What the worker keeps per stream (an incident's or a silence's) in its table: the
    decider state, and the offset of the stream's last command it reflects. After a crash,
    commands at or below that offset are redelivered ones whose effect the state already
    holds, so they are skipped rather than decided again on a newer state."""

    state: Incident | Silence | None = None
    through_offset: int = -1
