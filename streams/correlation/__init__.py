"""The correlation engine: sources (Prometheus, Loki, Kubernetes), resilience, ranking,
SLO impact, and a run that turns them into commands.

Entry points for the worker:
- `build_sources(settings)` once per process, `close_sources(sources)` at shutdown;
- `start_command(settings, incident, run_id, trigger)` opens a run;
- `correlate(settings, incident, run_id, sources)` yields the run's commands;
- `assess_impact(settings, incident, previous)` returns the `AssessImpact` worth sending;
- `probe_sources(settings, service)` tells `warroom doctor` what each source answers.

May import `contracts` and `foundation` (the correlation settings, the service graph);
the rest of `streams` imports it, never the other way round.
"""

from streams.correlation.impact import assess_impact
from streams.correlation.model import Finding, IncidentFacts, Source, SourceReport
from streams.correlation.probe import probe_sources
from streams.correlation.resilience import SYSTEM_CLOCK, Clock
from streams.correlation.run import build_sources, close_sources, correlate, run_outcome, start_command

__all__ = [
    "SYSTEM_CLOCK", "Clock", "Finding", "IncidentFacts", "Source", "SourceReport",
    "assess_impact", "build_sources", "close_sources", "correlate", "probe_sources", "run_outcome",
    "start_command",
]
