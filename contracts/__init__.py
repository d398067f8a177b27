"""Wire contracts of Warroom: commands, events (with the envelope), alerts, outcomes,
silence matchers, and the evidence and hypotheses correlation records. Models, their
validation and a matcher's test of labels only; the bottom layer, importing nothing of ours."""

from contracts.alerts import Alert
from contracts.commands import ALL_COMMANDS, COMMAND_ADAPTER, COMMAND_TYPES, Command, CommandBase
from contracts.common import SYSTEM, Actor, ActorKind, Severity, Status
from contracts.events import ALL_EVENTS, EVENT_TYPES, ZERO_HASH, EventData, EventEnvelope
from contracts.outcomes import CommandOutcome

__all__ = [
    "ALL_COMMANDS", "ALL_EVENTS", "COMMAND_ADAPTER", "COMMAND_TYPES", "EVENT_TYPES", "SYSTEM",
    "ZERO_HASH", "Actor", "ActorKind", "Alert", "Command", "CommandBase", "CommandOutcome",
    "EventData", "EventEnvelope", "Severity", "Status",
]
