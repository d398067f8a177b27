"""When a run looks: the analysis window at the incident's own time (pure; SPEC §14).

The anchor is the first alert's `starts_at` when the incident came from alerts, else
its `opened_at`; never the wall clock. The window is `[anchor − window, anchor + settle]`:
`settle` lets in the evidence that accumulated just after the symptom began (a cause's
effect often shows at its callers a step later). The window never reaches past the
run's own time, so a live run sees up to now, while a replayed, late or historical
incident is analysed exactly as it happened. The baseline is the `baseline` before the
window: normal behaviour to compare against.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from streams.correlation.model import IncidentFacts
from streams.correlation.templates import delta
from foundation.settings import CorrelationSettings


@dataclass(frozen=True)
class Window:
    anchor: datetime
    start: datetime
    end: datetime
    baseline_start: datetime

    @property
    def baseline_end(self) -> datetime:
        return self.start

    @property
    def length(self) -> timedelta:
        return self.end - self.start

    def interval(self) -> str:
        """The window as an ISO 8601 interval, `start/end` in UTC."""
        return f"{_iso(self.start)}/{_iso(self.end)}"

    def baseline_interval(self) -> str:
        return f"{_iso(self.baseline_start)}/{_iso(self.baseline_end)}"


def analysis_window(incident: IncidentFacts, settings: CorrelationSettings, now: datetime) -> Window:
    """The window a run at `now` analyses for `incident` (module docstring).

    An anchor later than `now` (a producer's clock ahead of ours) counts as `now`."""
    anchor = min(incident.anchor, now)
    start = anchor - delta(settings.window)
    end = min(anchor + delta(settings.settle), now)
    return Window(anchor=anchor, start=start, end=end, baseline_start=start - delta(settings.baseline))


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")
