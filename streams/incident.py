"""What the decider remembers about one incident between commands.

An incident that was never opened is `None`; an opened one is an `Incident`. Both are
immutable; `evolve` (in `streams.decider`) returns a new value per event. The state is
also what the worker keeps in its Faust table, so it stays small and JSON-able.
"""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from pydantic import BaseModel, ConfigDict

from contracts.common import Severity, Status

RECENT_COMMANDS = 64
"""How many processed command ids an incident remembers, to make a duplicate a no-op.

This covers a command published twice (a producer retry, a client resending); commands
redelivered after a worker restart are recognised by their offset instead (`Applied`),
however many there are. Every id costs changelog bytes on each state write."""

RECENT_KEYS = 32
"""How many idempotency keys an incident remembers."""

RECENT_ESCALATIONS = 16
"""How many escalation steps (trigger event and level) an incident remembers, so one is recorded once."""

RECENT_RUNS = 8
"""How many correlation runs an incident remembers (late results of older runs are refused)."""


class Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Run(Frozen):
    """One correlation run: which sources it asked, which started and which completed."""

    run_id: UUID
    sources: tuple[str, ...]
    started: frozenset[str] = frozenset()
    completed: frozenset[str] = frozenset()
    done: bool = False


class Cause(Frozen):
    """The root cause people confirmed: confirming exactly this again is a no-op."""

    service: str
    signal: str | None = None
    note: str | None = None


class Incident(Frozen):
    """An opened incident as far as deciding the next command needs to know."""

    title: str
    service: str
    status: Status
    severity: Severity
    version: int
    last_hash: str
    acknowledged: bool = False  # ever acknowledged
    # Reopened and not acknowledged since: escalation runs again and acknowledging is news.
    reopened_unacknowledged: bool = False
    firing: frozenset[str] = frozenset()
    runs: tuple[Run, ...] = ()
    root_cause: Cause | None = None
    recent_commands: tuple[str, ...] = ()
    recent_keys: tuple[str, ...] = ()
    # When it opened and when its first alert started: a correlation run is anchored
    # there (streams.correlation.window), also after a restart forgot everything else.
    opened_at: datetime | None = None
    first_alert_at: datetime | None = None
    escalations: tuple[str, ...] = ()  # "<trigger event id>:<level>:<receivers>", newest last

    @property
    def resolved(self) -> bool:
        return self.status is Status.RESOLVED

    def run(self, run_id: UUID) -> Run | None:
        for run in self.runs:
            if run.run_id == run_id:
                return run
        return None

    def has_processed(self, command_id: UUID, idempotency_key: str | None) -> bool:
        """True when this command (or another with its idempotency key) was already applied."""
        if str(command_id) in self.recent_commands:
            return True
        return idempotency_key is not None and idempotency_key in self.recent_keys


State = Incident | None
"""The decider's state: `None` until the incident is opened."""


def remember(recent: tuple[str, ...], item: str, limit: int) -> tuple[str, ...]:
    """`recent` with `item` appended (once), keeping only the newest `limit` entries."""
    if recent and recent[-1] == item:
        return recent
    return (*recent[-(limit - 1):], item) if limit > 1 else (item,)
