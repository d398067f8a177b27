"""What GET /v1/topology answers."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field


class TopologyEdge(BaseModel):
    caller: str
    callee: str
    origins: list[str] = Field(description="where the edge came from: static, file, discovery:<name>")


class DiscoveryOutcome(BaseModel):
    name: str
    query: str = Field(description="the PromQL as run")
    edges: int = Field(description="edges it found")
    error: str | None = Field(default=None, description="why it found none, when it failed")


class Topology(BaseModel):
    at: datetime = Field(description="the moment discovery was evaluated at")
    nodes: list[str]
    edges: list[TopologyEdge]
    discovery: list[DiscoveryOutcome]
