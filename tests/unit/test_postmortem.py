"""Postmortems built from a scripted incident's events: sections, durations, who did what."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from uuid import UUID, uuid5

import pytest

from contracts.common import Actor, Severity, Status
from contracts.events import (
    ZERO_HASH, AlertAttached, AlertResolved, CorrelationCompleted, CorrelationSourceCompleted,
    CorrelationSourceStarted, CorrelationStarted, EventData, EventEnvelope, FindingRecorded, ImpactAssessed,
    IncidentAcknowledged, IncidentOpened, NoteAdded, RootCauseConfirmed, SeverityChanged, StatusChanged,
)
from contracts.hypotheses import Hypothesis
from projections.history.postmortem import build, to_json
from projections.history.postmortem_markdown import TO_WRITE, duration, render
from foundation.chain import seal

INCIDENT = UUID("5f0c7f3e-1b6a-4c8e-9a51-0d2b3c4e5f60")
RUN = UUID("0b1c2d3e-4f50-4a6b-8c7d-9e0f1a2b3c4d")
T0 = datetime(2025, 4, 2, 14, 0, tzinfo=UTC)
PAGER = Actor(kind="producer", id="alertmanager")
ALICE, BOB = Actor(kind="user", id="alice"), Actor(kind="user", id="bob")
SYSTEM = Actor(kind="system", id="warroom")
QUERY = 'sum(rate(http_requests_total{service="checkout",status=~"5.."}[5m]))'


def script(*later: tuple[timedelta, Actor, EventData],
           hypotheses: list | None = None) -> list[EventEnvelope]:
    """The incident's life; `hypotheses` replace the run's, `later` steps follow its resolution."""
    steps: list[tuple[timedelta, Actor, EventData]] = [
        (timedelta(0), PAGER, IncidentOpened(title="Checkout 5xx above 5%", service="checkout",
                                             severity=Severity.HIGH, description="Alert HighErrorRate fired")),
        (timedelta(seconds=1), PAGER, AlertAttached(fingerprint="f1", alertname="HighErrorRate",
                                                     labels={"service": "checkout"}, starts_at=T0)),
        (timedelta(seconds=2), SYSTEM, CorrelationStarted(run_id=RUN, sources=["prometheus", "loki"],
                                                          trigger="opened")),
        (timedelta(seconds=2), SYSTEM, StatusChanged(from_=Status.OPEN, to=Status.INVESTIGATING,
                                                     reason="correlation started")),
        (timedelta(seconds=3), SYSTEM, CorrelationSourceStarted(run_id=RUN, source="prometheus")),
        (timedelta(seconds=4), SYSTEM, CorrelationSourceCompleted(
            run_id=RUN, source="prometheus", outcome="succeeded", attempts=1, duration_ms=850, queries=[QUERY])),
        (timedelta(seconds=4), SYSTEM, CorrelationSourceCompleted(
            run_id=RUN, source="loki", outcome="unavailable", attempts=3, duration_ms=3000,
            error="connection refused")),
        (timedelta(seconds=5), SYSTEM, FindingRecorded(
            run_id=RUN, finding_id=UUID(int=7), source="prometheus", kind="error_rate",
            summary="error rate 12% above 5% over 5m", confidence=0.9, changed_at=T0 - timedelta(minutes=3),
            evidence={"query": QUERY, "window": "5m", "value": 0.12, "threshold": 0.05,
                      "link": "http://prometheus:9090/graph?g0.expr=x", "series": [1, 2]})),
        (timedelta(seconds=6), SYSTEM, CorrelationCompleted(run_id=RUN, outcome="partial", hypotheses=hypotheses or [
            {"rank": 1, "summary": "Error spike: error rate 12% above 5% over 5m", "confidence": 0.9}])),
        (timedelta(minutes=2, seconds=10), BOB, IncidentAcknowledged(by="bob")),
        (timedelta(minutes=4), BOB, SeverityChanged(from_=Severity.HIGH, to=Severity.CRITICAL,
                                                    reason="payments failing")),
        (timedelta(minutes=5), SYSTEM, ImpactAssessed(slo="checkout-availability", burn_rate=14.4,
                                                      error_budget_left=0.62, estimated_cost=1800, window="30d")),
        (timedelta(minutes=9), ALICE, NoteAdded(note_id=UUID(int=8), text="Rolled back 2025.04.2", author="alice")),
        (timedelta(minutes=15), PAGER, AlertResolved(fingerprint="f1", ends_at=T0 + timedelta(minutes=15),
                                                     firing_left=0)),
        (timedelta(minutes=15), SYSTEM, StatusChanged(from_=Status.INVESTIGATING, to=Status.MITIGATED,
                                                      reason="all alerts resolved")),
        (timedelta(minutes=42), ALICE, StatusChanged(from_=Status.MITIGATED, to=Status.RESOLVED,
                                                     reason="error rate normal for 25m")),
        *later,
    ]
    events, prev = [], ZERO_HASH
    for version, (after, actor, fact) in enumerate(steps, start=1):
        event = seal(event_id=uuid5(INCIDENT, str(version)), incident_id=INCIDENT, version=version, data=fact,
                     occurred_at=T0 + after, recorded_at=T0 + after + timedelta(milliseconds=5),
                     causation_id=uuid5(INCIDENT, f"c{version}"), correlation_id=INCIDENT, actor=actor,
                     prev_hash=prev)
        events.append(event)
        prev = event.hash
    return events


def test_durations_are_measured_from_the_opening() -> None:
    pm = build(script())
    assert pm.durations == {"time_to_acknowledge_s": 130.0, "time_to_mitigate_s": 900.0,
                            "time_to_resolve_s": 2520.0}
    text = render(pm)
    assert "| Time to acknowledge | 2m 10s |" in text
    assert "| Time to mitigate | 15m 00s |" in text
    assert "| Time to resolve | 42m 00s |" in text


def test_every_section_is_there_and_the_ones_people_write_are_empty() -> None:
    text = render(build(script()))
    headings = [line for line in text.splitlines() if line.startswith("#")]
    assert headings[0] == "# Postmortem: Checkout 5xx above 5%"
    for section in ("Summary", "Impact", "Durations", "Timeline", "Who did what", "Alerts", "Correlation",
                    "Hypotheses", "Notes", "Contributing factors", "What went well", "What went badly",
                    "Action items"):
        assert f"## {section}" in headings, section
    contributing = text.split("## Contributing factors")[1].split("##")[0]
    assert contributing.strip() == TO_WRITE
    assert text.rstrip().endswith("| | | |")


def test_the_timeline_says_who_did_what_in_order() -> None:
    pm = build(script())
    assert [e.version for e in pm.timeline] == list(range(1, 17))
    assert [(r.actor, r.actions) for r in pm.responders] == [
        ("producer:alertmanager", 3), ("system:warroom", 9), ("bob", 2), ("alice", 2)]
    text = render(pm)
    assert "| 2025-04-02 14:02:10 UTC | bob | Acknowledged by bob |" in text
    assert "| 2025-04-02 14:42:00 UTC | alice | Status mitigated → resolved: error rate normal for 25m |" in text


def test_a_runs_progress_folds_into_the_line_of_its_start() -> None:
    text = render(build(script()))
    timeline = text.split("## Timeline")[1].split("\n## ")[0]
    assert "| system:warroom | Correlation started over prometheus, loki — 2 sources (1 unavailable), " \
           "1 finding, 4s |" in timeline
    for folded in ("prometheus: querying", "prometheus succeeded", "loki unavailable", "prometheus finding"):
        assert folded not in timeline, folded
    assert "| Correlation partial; top hypothesis: Error spike" in timeline  # hypotheses stand on their own
    assert "loki unavailable" not in timeline and "| loki | unavailable |" in text  # the run's section has it all


def test_findings_show_their_evidence_queries_and_hypotheses_are_ranked() -> None:
    text = render(build(script()))
    assert f"Query: `{QUERY}`" in text
    assert "Link: http://prometheus:9090/graph?g0.expr=x" in text
    assert "| loki | unavailable | 3 | 3000 ms | connection refused |" in text
    assert "| 1 | — | — | — | 0.90 | — | Error spike: error rate 12% above 5% over 5m |" in text
    assert f"- prometheus: `{QUERY}`" in text


TYPED = [Hypothesis(rank=1, service="payments-db", signal="latency", confidence=0.87,
                    path=["payments-db", "payments", "checkout"], started_at=T0 - timedelta(minutes=4),
                    summary="p95 latency 40 ms → 900 ms").model_dump(mode="json"),
         Hypothesis(rank=2, service="checkout", signal="errors", confidence=0.9, path=["checkout"]).model_dump(mode="json")]


def test_the_confirmed_root_cause_and_how_correlation_did() -> None:
    events = script((timedelta(hours=2), ALICE, RootCauseConfirmed(
        service="payments-db", signal="latency", note="pool of 10 | exhausted", by="alice")), hypotheses=TYPED)
    pm = build(events)
    text = render(pm)
    assert "\n## Root cause\n" in text.split("## Impact")[0]
    assert "| Confirmed cause | **payments-db (latency)** |" in text
    assert "| Confirmed by | alice at 2025-04-02 16:00:00 UTC (version 17) |" in text
    assert "| Note | pool of 10 \\| exhausted |" in text
    assert f"| Correlation | correlation had it first (top-1; run `{str(RUN)[:8]}`, the latest before the " \
           "confirmation) |" in text
    assert "| First hypothesis naming it | 6s after opening" in text
    assert "The root cause was confirmed as **payments-db (latency)** by alice; correlation had it first" in text
    # It stands out in the timeline, and the hypothesis it matches is marked.
    assert "| alice | **Root cause confirmed by alice: payments-db (latency). pool of 10 \\| exhausted** |" in text
    assert ("| 1 | **payments-db** (confirmed) | latency | payments-db → payments → checkout | 0.87 "
            "| 2025-04-02 13:56:00 UTC | p95 latency 40 ms → 900 ms |") in text
    assert "| 2 | checkout | errors | checkout | 0.90 | — | — |" in text
    data = to_json(pm)
    assert data["root_cause"] == {
        "service": "payments-db", "signal": "latency", "note": "pool of 10 | exhausted", "confirmed_by": "alice",
        "confirmed_at": "2025-04-02T16:00:00Z", "version": 17, "supersedes": None, "run_id": str(RUN), "rank": 1,
        "top1": True, "top3": True, "first_named_run_id": str(RUN), "first_named_at": "2025-04-02T14:00:06Z",
        "time_to_first_hypothesis_s": 6.0}


def test_a_cause_correlation_missed_or_ranked_lower_says_so() -> None:
    second = script((timedelta(hours=2), BOB, RootCauseConfirmed(service="checkout", by="bob")), hypotheses=TYPED)
    assert "correlation had it in its top 3 (rank 2;" in render(build(second))
    missed = script((timedelta(hours=2), BOB, RootCauseConfirmed(service="search", by="bob")), hypotheses=TYPED)
    text = render(build(missed))
    assert f"correlation did not name it (run `{str(RUN)[:8]}`" in text and "| no run named it |" in text
    old_shape = render(build(script((timedelta(hours=2), BOB, RootCauseConfirmed(service="checkout", by="bob")))))
    assert "correlation did not name it" in old_shape
    superseding = build(script((timedelta(hours=2), BOB, RootCauseConfirmed(service="checkout", by="bob")),
                               (timedelta(hours=3), ALICE, RootCauseConfirmed(
                                   service="payments-db", by="alice", supersedes="checkout")), hypotheses=TYPED))
    assert superseding.root_cause["supersedes"] == "checkout" and superseding.root_cause["top1"]
    assert "| Replaced | checkout |" in render(superseding)


def test_header_tells_severity_history_and_that_the_chain_is_intact() -> None:
    text = render(build(script()))
    assert "| Severity | critical (opened as high) |" in text
    assert "| Log | 16 events, hash chain intact" in text
    assert "| Acknowledged | 2025-04-02 14:02:10 UTC by bob, 2m 10s after opening |" in text


def test_a_broken_chain_is_stated_in_the_document() -> None:
    events = script()
    raw = json.loads(events[9].model_dump_json(by_alias=True))
    raw["data"]["by"] = "mallory"
    events[9] = EventEnvelope.model_validate(raw)
    pm = build(events)
    assert not pm.log.valid and pm.log.first_bad_version == 10
    assert "the hash chain breaks at version 10" in render(pm)


def test_json_carries_the_same_facts() -> None:
    data = to_json(build(script()))
    json.dumps(data)  # serialisable as is
    assert data["durations"]["time_to_resolve_s"] == 2520.0
    assert data["incident"]["status"] == "resolved" and data["opened_severity"] == "high"
    assert data["timeline"][9] == {"at": "2025-04-02T14:02:10Z", "version": 10, "type": "IncidentAcknowledged",
                                   "actor": "bob", "summary": "Acknowledged by bob", "run_id": None}
    assert {e["run_id"] for e in data["timeline"][2:9] if e["type"].startswith(("Correlation", "Finding"))} == {str(RUN)}
    assert data["hypotheses_run_id"] == str(RUN)
    assert data["correlation_runs"][0]["findings"][0]["evidence"]["query"] == QUERY
    assert data["contributing_factors"] == [] and data["action_items"] == []
    assert data["log"]["valid"] is True


def test_an_unopened_or_empty_log_has_no_postmortem() -> None:
    with pytest.raises(ValueError):
        build([])
    with pytest.raises(ValueError):
        build(script()[1:])


@pytest.mark.parametrize(("seconds", "text"), [(None, "—"), (0, "0s"), (0.42, "0.4s"), (3.0, "3s"), (9.97, "10s"),
                                               (59.6, "1m 00s"), (3725, "1h 02m 05s")])
def test_durations_read_as_people_say_them(seconds, text) -> None:
    assert duration(seconds) == text


def test_the_paging_section_lists_every_attempt_and_escalation() -> None:
    from contracts.events import Escalated, NotificationFailed, NotificationSent

    notifier = Actor(kind="system", id="notifier")
    page = dict(notification_id=UUID(int=9), receiver="oncall", kind="webhook", level=0, trigger="opened",
                trigger_event_id=uuid5(INCIDENT, "1"))
    pm = build(script(
        (timedelta(minutes=43), notifier, NotificationFailed(**page, attempt=1, status=503, error="HTTP 503",
                                                             will_retry=True)),
        (timedelta(minutes=44), notifier, NotificationSent(**page, attempt=2, status=200)),
        (timedelta(minutes=45), notifier, Escalated(level=1, receivers=["manager"],
                                                    trigger_event_id=uuid5(INCIDENT, "1"))),
    ))
    section = render(pm).split("## Paging")[1].split("\n## ")[0]
    assert "| oncall (webhook) | opened | 1 | failed: HTTP 503 |" in section
    assert "| oncall (webhook) | opened | 2 | sent |" in section
    assert "escalated to level 1: manager" in section
    assert [p["type"] for p in to_json(pm)["paging"]] == ["NotificationFailed", "NotificationSent", "Escalated"]
    assert "Nobody was paged" in render(build(script()))
