"""The pure parts of the read models: incident fold, durations, sentences, service rule."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from contracts import events as ev
from contracts.common import Actor, ActorKind
from contracts.events import ZERO_HASH
from contracts.hypotheses import Hypothesis
from projections import alerts, correlation, incidents, services, timeline
from projections.logged import LoggedEvent, iso
from testing.synthetic import LIFE_LENGTH, synthetic_log
from foundation.chain import seal

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
ALICE = Actor(kind=ActorKind.USER, id="alice")
INCIDENT = uuid.UUID(int=1)


def event(version: int, data: ev.EventData, *, at: timedelta = timedelta(0), actor: Actor = ALICE):
    return seal(event_id=uuid.uuid4(), incident_id=INCIDENT, version=version, data=data,
                occurred_at=T0 + at, recorded_at=T0 + at, causation_id=uuid.uuid4(),
                correlation_id=INCIDENT, actor=actor, prev_hash=ZERO_HASH)


OPENED = ev.IncidentOpened(title="Checkout 5xx", service="checkout", severity="high")


def fold(*events):
    row = None
    for e in events:
        row = incidents.evolve(row, e)
    return row


def test_opened_sets_the_clock_and_defaults():
    row = fold(event(1, OPENED))
    assert row["status"] == "open" and row["version"] == 1
    assert row["opened_at"] == T0 and row["updated_at"] == T0
    assert row["opened_by"] == {"kind": "user", "id": "alice"}
    assert row["alerts_firing"] == 0 and row["time_to_resolve_s"] is None


def test_durations_are_seconds_from_opening():
    row = fold(
        event(1, OPENED),
        event(2, ev.IncidentAcknowledged(by="bob"), at=timedelta(seconds=90)),
        event(3, ev.StatusChanged(from_="open", to="mitigated"), at=timedelta(minutes=10)),
        event(4, ev.StatusChanged(from_="mitigated", to="resolved"), at=timedelta(minutes=30)),
    )
    assert row["acknowledged_by"] == "bob"
    assert row["time_to_acknowledge_s"] == 90.0
    assert row["time_to_mitigate_s"] == 600.0
    assert row["time_to_resolve_s"] == 1800.0
    assert row["resolved_at"] == T0 + timedelta(minutes=30)


def test_reopening_clears_resolution_but_keeps_first_mitigation():
    row = fold(
        event(1, OPENED),
        event(2, ev.StatusChanged(from_="open", to="mitigated"), at=timedelta(minutes=5)),
        event(3, ev.StatusChanged(from_="mitigated", to="resolved"), at=timedelta(minutes=6)),
        event(4, ev.StatusChanged(from_="resolved", to="investigating", reason="back"), at=timedelta(minutes=7)),
        event(5, ev.StatusChanged(from_="investigating", to="mitigated"), at=timedelta(minutes=9)),
    )
    assert row["status"] == "mitigated"
    assert row["resolved_at"] is None and row["time_to_resolve_s"] is None
    assert row["mitigated_at"] == T0 + timedelta(minutes=5) and row["time_to_mitigate_s"] == 300.0


def test_second_acknowledge_keeps_the_first():
    row = fold(event(1, OPENED), event(2, ev.IncidentAcknowledged(by="bob"), at=timedelta(seconds=5)),
               event(3, ev.IncidentAcknowledged(by="carol"), at=timedelta(seconds=9)))
    assert row["acknowledged_by"] == "bob" and row["time_to_acknowledge_s"] == 5.0


def test_correlation_summary_tracks_the_latest_run_and_top_hypothesis():
    run, old = uuid.uuid4(), uuid.uuid4()
    row = fold(
        event(1, OPENED),
        event(2, ev.CorrelationStarted(run_id=run, sources=["prometheus", "loki"])),
        event(3, ev.CorrelationSourceStarted(run_id=run, source="prometheus")),
        event(4, ev.CorrelationSourceCompleted(run_id=run, source="loki", outcome="no_data",
                                               attempts=1, duration_ms=30)),
        event(5, ev.CorrelationCompleted(run_id=old, outcome="failed")),  # an older run: ignored
        event(6, ev.CorrelationCompleted(run_id=run, outcome="partial", hypotheses=[
            {"title": "deploy", "confidence": 0.9}, {"title": "db", "confidence": 0.2}])),
    )
    assert row["correlation"]["run_id"] == str(run)
    assert row["correlation"]["state"] == "completed" and row["correlation"]["outcome"] == "partial"
    assert row["correlation"]["sources"] == {"prometheus": "running", "loki": "no_data"}
    assert row["top_hypothesis"] == {"title": "deploy", "confidence": 0.9}


def test_typed_hypotheses_reach_the_summary_and_the_runs_as_json():
    run, finding = uuid.uuid4(), uuid.uuid4()
    db = Hypothesis(rank=1, service="db", signal="latency", confidence=0.8, path=["db", "checkout"],
                    started_at=T0, evidence=[finding], summary="db: latency up to 1.5")
    completed = event(3, ev.CorrelationCompleted(run_id=run, outcome="succeeded", hypotheses=[db]))
    row = fold(event(1, OPENED), event(2, ev.CorrelationStarted(run_id=run, sources=["prometheus"])), completed)
    expected = {"rank": 1, "service": "db", "signal": "latency", "confidence": 0.8, "path": ["db", "checkout"],
                "started_at": "2025-03-01T12:00:00Z", "evidence": [str(finding)], "summary": "db: latency up to 1.5",
                "sources": []}
    assert row["top_hypothesis"] == expected
    runs: dict = {}
    correlation.evolve(runs, {}, LoggedEvent(event(2, ev.CorrelationStarted(run_id=run, sources=["prometheus"])), 0, 0))
    correlation.evolve(runs, {}, LoggedEvent(completed, 0, 1))
    assert runs[run]["hypotheses"] == [expected]
    # A typed hypothesis is told by its suspect, signal and path, whatever its summary says.
    assert timeline.summarize(completed) == "Correlation succeeded; top hypothesis: db (latency) via db → checkout"
    unnamed = db.model_copy(update={"summary": ""})
    assert timeline.summarize(event(3, ev.CorrelationCompleted(run_id=run, outcome="succeeded", hypotheses=[unnamed]))) \
        == "Correlation succeeded; top hypothesis: db (latency) via db → checkout"


def test_alert_count_and_impact():
    row = fold(
        event(1, OPENED),
        event(2, ev.AlertAttached(fingerprint="a", starts_at=T0)),
        event(3, ev.AlertAttached(fingerprint="b", starts_at=T0)),
        event(4, ev.AlertResolved(fingerprint="a", ends_at=T0, firing_left=1)),
        event(5, ev.ImpactAssessed(slo="avail", burn_rate=2.0, error_budget_left=0.5)),
        event(6, ev.SeverityChanged(from_="high", to="critical")),
    )
    assert row["alerts_firing"] == 1 and row["severity"] == "critical"
    assert row["impact"]["slo"] == "avail" and row["impact"]["assessed_at"] == iso(T0)


def test_the_confirmed_root_cause_is_on_the_incident_and_the_latest_one_stands():
    row = fold(event(1, OPENED), event(2, ev.RootCauseConfirmed(service="db", signal="latency", by="bob"),
                                       at=timedelta(minutes=3)),
               event(3, ev.RootCauseConfirmed(service="payments", note="retry storm", by="eve", supersedes="db"),
                     at=timedelta(minutes=5)))
    assert row["root_cause"] == {"service": "payments", "signal": None, "note": "retry storm", "confirmed_by": "eve",
                                 "confirmed_at": iso(T0 + timedelta(minutes=5)), "version": 3, "supersedes": "db"}
    assert fold(event(1, OPENED))["root_cause"] is None


def test_events_of_an_incident_never_opened_leave_no_row():
    assert incidents.evolve(None, event(2, ev.IncidentAcknowledged(by="bob"))) is None


def test_summary_is_json_ready():
    summary = incidents.to_summary(fold(event(1, OPENED)))
    assert summary["id"] == str(INCIDENT) and summary["opened_at"] == "2025-03-01T12:00:00Z"


@pytest.mark.parametrize(("data", "sentence"), [
    (ev.StatusChanged(from_="open", to="investigating", reason="correlation started"),
     "Status open → investigating: correlation started"),
    (ev.StatusChanged(from_="mitigated", to="resolved"), "Status mitigated → resolved"),
    (ev.IncidentAcknowledged(by="alice"), "Acknowledged by alice"),
    (OPENED, "Opened by alice: Checkout 5xx (high, checkout)"),
    (ev.SeverityChanged(from_="high", to="critical", reason="customers"), "Severity high → critical: customers"),
    (ev.NoteAdded(note_id=uuid.uuid4(), text="rolled   back\nv42", author="bob"), "Note by bob: rolled back v42"),
    (ev.AlertAttached(fingerprint="f1", alertname="HighErrorRate", starts_at=T0), "Alert HighErrorRate firing"),
    (ev.AlertResolved(fingerprint="f1", ends_at=T0, firing_left=2), "Alert f1 resolved (2 still firing)"),
    (ev.CorrelationStarted(run_id=uuid.uuid4(), sources=["prometheus", "loki"]),
     "Correlation started over prometheus, loki"),
    (ev.CorrelationSourceCompleted(run_id=uuid.uuid4(), source="loki", outcome="failed", attempts=3,
                                   duration_ms=900, error="HTTP 500"), "loki failed after 3 attempts: HTTP 500"),
    (ev.CorrelationSourceCompleted(run_id=uuid.uuid4(), source="prometheus", outcome="no_data", attempts=1,
                                   duration_ms=9, queries=["up{service=\"x\"}"]),
     "prometheus returned no data: up{service=\"x\"}"),
    (ev.CorrelationSourceCompleted(run_id=uuid.uuid4(), source="kubernetes", outcome="unavailable",
                                   attempts=0, duration_ms=0), "kubernetes unavailable"),
    (ev.CorrelationCompleted(run_id=uuid.uuid4(), outcome="succeeded", hypotheses=[{"title": "bad deploy"}]),
     "Correlation succeeded; top hypothesis: bad deploy"),
    (ev.CorrelationCompleted(run_id=uuid.uuid4(), outcome="succeeded", hypotheses=[
        {"rank": 1, "service": "db", "signal": "latency", "confidence": 0.8, "path": ["db", "payments", "checkout"]}]),
     "Correlation succeeded; top hypothesis: db (latency) via db → payments → checkout"),
    (ev.ImpactAssessed(slo="avail", burn_rate=14.4, error_budget_left=0.63),
     "SLO avail: burn rate 14.4×, 63% error budget left"),
    (ev.RootCauseConfirmed(service="db", signal="latency", by="bob"), "Root cause confirmed by bob: db (latency)"),
    (ev.RootCauseConfirmed(service="payments", by="bob", supersedes="db", note="it was the\nretry storm"),
     "Root cause confirmed by bob: payments, replacing db. it was the retry storm"),
    (ev.RootCauseConfirmed(service="db", by="eve", supersedes="db", note="failover took 4 min"),
     "Root cause confirmed again by eve: db. failover took 4 min"),
])
def test_timeline_sentences(data, sentence):
    assert timeline.summarize(event(1, data)) == sentence


def test_long_notes_are_clipped():
    text = timeline.summarize(event(1, ev.NoteAdded(note_id=uuid.uuid4(), text="x" * 500, author="a")))
    assert len(text) < 150 and text.endswith("…")


@pytest.mark.parametrize(("open_severities", "status", "worst"), [
    ([], "operational", None),
    (["low"], "degraded", "low"),
    (["medium", "high"], "degraded", "high"),
    (["low", "critical", "high"], "outage", "critical"),
])
def test_service_status_rule(open_severities, status, worst):
    assert services.service_status(open_severities) == status
    assert services.worst(open_severities) == worst


def test_alert_rows_refire_keeps_first_seen():
    def logged(version, data, at):
        return LoggedEvent(event(version, data, at=at), 0, version)
    row = alerts.evolve(None, logged(2, ev.AlertAttached(fingerprint="f", alertname="A", starts_at=T0),
                                     timedelta(seconds=1)))
    row = alerts.evolve(row, logged(3, ev.AlertResolved(fingerprint="f", ends_at=T0 + timedelta(minutes=1),
                                                        firing_left=0), timedelta(minutes=1)))
    assert row["status"] == "resolved" and row["resolved_at"] == T0 + timedelta(minutes=1)
    row = alerts.evolve(row, logged(4, ev.AlertAttached(fingerprint="f", starts_at=T0 + timedelta(minutes=5)),
                                    timedelta(minutes=5)))
    assert row["status"] == "firing" and row["resolved_at"] is None
    assert row["first_seen"] == T0 and row["alertname"] == "A"


def test_correlation_rows_follow_each_source():
    run = uuid.uuid4()
    runs, sources = {}, {}
    for version, data in enumerate([
        ev.CorrelationStarted(run_id=run, sources=["prometheus", "loki"]),
        ev.CorrelationSourceStarted(run_id=run, source="loki"),
        ev.CorrelationSourceCompleted(run_id=run, source="loki", outcome="timed_out", attempts=3,
                                      duration_ms=10_000),
        ev.CorrelationCompleted(run_id=run, outcome="partial"),
    ], start=2):
        correlation.evolve(runs, sources, LoggedEvent(event(version, data), 0, version))
    assert runs[run]["state"] == "completed" and runs[run]["outcome"] == "partial"
    assert runs[run]["sources"] == {"prometheus": "pending", "loki": "timed_out"}
    assert sources[(run, "loki")]["attempts"] == 3 and sources[(run, "prometheus")]["state"] == "pending"


def test_synthetic_log_is_gapless_per_incident():
    seen: dict = {}
    for e in synthetic_log(3 * LIFE_LENGTH, concurrent=3):
        assert e.version == seen.get(e.incident_id, 0) + 1
        seen[e.incident_id] = e.version
    assert max(seen.values()) == LIFE_LENGTH
