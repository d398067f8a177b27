"""Response bodies of the service endpoints."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel


class Service(BaseModel):
    name: str
    status: Literal["operational", "degraded", "outage"] | str
    open_incidents: int = 0
    worst_severity: str | None = None
    updated_at: datetime | None = None
