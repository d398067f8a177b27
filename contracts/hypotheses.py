"""Hypotheses: what correlation proposes as the cause of an incident (SPEC §14).

A hypothesis names a suspect service and the signal that moved there, how it reaches
the symptom through the service graph, and the findings that support it. Consumers in
other languages rely on these fields, so they are a model, never a free dict.
"""

from __future__ import annotations

from uuid import UUID

from pydantic import Field

from contracts.common import Message, UtcDatetime


class Hypothesis(Message):
    """One ranked explanation of an incident.

    `path` runs from the suspect to the symptom service along the service graph
    (caller ← callee read backwards: `["db", "payments", "checkout"]` means checkout
    calls payments, which calls db); a suspect that is the symptom service itself has
    the one-element path `[service]`. `evidence` lists the ids of the findings that
    support it. `started_at` is when the suspect's signal changed, if known.
    """

    rank: int = Field(ge=1)
    service: str = Field(min_length=1, max_length=200)
    signal: str = Field(min_length=1, max_length=100)
    confidence: float = Field(ge=0, le=1)
    path: list[str] = Field(min_length=1)
    started_at: UtcDatetime | None = None
    evidence: list[UUID] = Field(default_factory=list)
    summary: str = Field(default="", max_length=2_000)
    sources: list[str] = Field(default_factory=list)
