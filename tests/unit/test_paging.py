"""Routing and escalation: given this incident's log and these settings, at this moment
these pages and escalations are owed. The log is made by the real decider. Pure."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import UUID, uuid5

import pytest

from contracts.commands import (
    AcknowledgeIncident,
    AttachAlert,
    ChangeSeverity,
    ChangeStatus,
    CommandBase,
    Escalate as EscalateCommand,
    OpenIncident,
    RecordNotification,
)
from contracts.common import Actor, Severity, Status
from contracts.events import EventEnvelope
from streams.decider import decide
from streams.incident import State
from streams.incident_log import execute
from streams.paging import (
    Deliver,
    Escalate,
    Pager,
    attempt_command_id,
    backoff,
    due,
    evolve,
    expired,
    settled,
    matches,
    next_due,
    notification_id,
)
from foundation.settings import NotifySettings, Route

INCIDENT = UUID("00000000-0000-4000-8000-000000000001")
T0 = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
ALICE = Actor(kind="user", id="alice")
NOTIFY = NotifySettings(
    receivers={name: {"kind": "webhook", "url": f"http://127.0.0.1:1/{name}"}
               for name in ("oncall", "db-team", "manager", "director", "alerts")},
    routes=[
        {"services": ["payments"], "severities": ["critical", "high"], "receivers": ["oncall"],
         "escalate": [{"after_s": 300, "receivers": ["manager"]}, {"after_s": 900, "receivers": ["director"]}]},
        {"labels": {"team": "db"}, "receivers": ["db-team", "oncall"]},
        {"labels": {"team": "payments"}, "receivers": ["alerts"], "on_alert": True},
    ],
)


class Log:
    """An incident run through the real decider, folded into a pager as it goes."""

    def __init__(self) -> None:
        self.state: State = None
        self.events: list[EventEnvelope] = []
        self.pager: Pager | None = None
        self._n = 0

    def do(self, command_type: type[CommandBase], at: datetime = T0, **fields: object) -> Log:
        self._n += 1
        command = command_type(command_id=uuid5(INCIDENT, str(self._n)), incident_id=INCIDENT, actor=ALICE,
                               issued_at=at, **fields)
        decision = execute(command, self.state, at)
        self.state = decision.state
        for event in decision.events:
            self.events.append(event)
            self.pager = evolve(self.pager, event, NOTIFY)
        return self

    def open(self, service: str = "payments", severity: str = "high", **labels: str) -> Log:
        return self.do(OpenIncident, title="Checkout 5xx", service=service, severity=severity, labels=labels)

    def act(self, action: Deliver | Escalate, at: datetime, ok: bool = True) -> Log:
        if isinstance(action, Escalate):
            return self.do(EscalateCommand, at, level=action.level, receivers=list(action.receivers),
                           trigger_event_id=action.trigger_event_id)
        page = action.page
        return self.do(RecordNotification, at, notification_id=page.notification_id, receiver=page.receiver,
                       kind="webhook", attempt=action.attempt, outcome="sent" if ok else "failed",
                       error=None if ok else "HTTP 503", will_retry=not ok and action.attempt <= NOTIFY.retries,
                       status=200 if ok else 503, level=page.level, trigger=page.trigger,
                       trigger_event_id=page.trigger_event_id)

    def due(self, at: datetime) -> list[Deliver | Escalate]:
        assert self.pager is not None
        return due(self.pager, at, NOTIFY)

    def deliver_all(self, at: datetime) -> Log:
        for action in self.due(at):
            if isinstance(action, Deliver):
                self.act(action, at)
        return self


def owed(actions: list[Deliver | Escalate]) -> list[tuple[str, int, str]]:
    return [(a.page.receiver, a.page.level, a.page.trigger) for a in actions if isinstance(a, Deliver)]


def escalations(actions: list[Deliver | Escalate]) -> list[tuple[int, tuple[str, ...]]]:
    return [(a.level, a.receivers) for a in actions if isinstance(a, Escalate)]


@pytest.mark.parametrize(("service", "severity", "labels", "expected"), [
    ("payments", "high", {}, ["oncall"]),
    ("payments", "low", {}, []),
    ("search", "critical", {}, []),
    ("search", "low", {"team": "db"}, ["db-team", "oncall"]),
    ("payments", "critical", {"team": "db"}, ["oncall", "db-team"]),  # once each, route order
])
def test_opening_pages_every_matching_route_once(service: str, severity: str, labels: dict[str, str],
                                                 expected: list[str]) -> None:
    log = Log().open(service, severity, **labels)
    assert [r for r, _, _ in owed(log.due(T0))] == expected
    assert all(t == "opened" and level == 0 for _, level, t in owed(log.due(T0)))


@pytest.mark.parametrize(("route", "service", "severity", "labels", "expected"), [
    (Route(receivers=["x"]), "any", Severity.LOW, {}, True),
    (Route(receivers=["x"], services=["a", "b"]), "b", Severity.LOW, {}, True),
    (Route(receivers=["x"], services=["a"]), "b", Severity.LOW, {}, False),
    (Route(receivers=["x"], severities=["critical"]), "a", Severity.HIGH, {}, False),
    (Route(receivers=["x"], labels={"team": "db", "env": "prod"}), "a", Severity.LOW, {"team": "db"}, False),
    (Route(receivers=["x"], labels={"team": "db"}), "a", Severity.LOW, {"team": "db", "env": "prod"}, True),
])
def test_route_matching(route: Route, service: str, severity: Severity, labels: dict[str, str],
                        expected: bool) -> None:
    assert matches(route, service, severity, labels) is expected


def test_a_delivered_page_is_owed_no_more_and_its_id_is_deterministic() -> None:
    log = Log().open().deliver_all(T0)
    assert owed(log.due(T0 + timedelta(seconds=1))) == []
    opened = log.events[0]
    assert log.events[1].data.notification_id == notification_id(INCIDENT, opened.event_id, "oncall", 0)


def test_escalation_fires_level_by_level_when_nobody_acknowledges() -> None:
    log = Log().open().deliver_all(T0)
    assert escalations(log.due(T0 + timedelta(seconds=299))) == []
    assert next_due(log.pager, NOTIFY) == T0 + timedelta(seconds=300)
    at = T0 + timedelta(seconds=300)
    assert escalations(log.due(at)) == [(1, ("manager",))]
    log.act(log.due(at)[0], at)
    assert owed(log.due(at)) == [("manager", 1, "escalation")]
    log.deliver_all(at)
    assert log.due(at + timedelta(seconds=1)) == []
    later = T0 + timedelta(seconds=900)
    assert escalations(log.due(later)) == [(2, ("director",))]


def test_acknowledging_stops_escalation_and_the_decider_refuses_a_late_one() -> None:
    log = Log().open().deliver_all(T0)
    late = T0 + timedelta(seconds=300)
    pending = log.due(late)
    log.do(AcknowledgeIncident, T0 + timedelta(seconds=100))
    assert log.due(late) == [] and next_due(log.pager, NOTIFY) is None
    # An escalation decided on before the acknowledgement arrived is a no-op on the log.
    assert isinstance(pending[0], Escalate)
    before = len(log.events)
    log.act(pending[0], late)
    assert len(log.events) == before


def test_resolving_stops_escalation() -> None:
    log = Log().open().deliver_all(T0)
    log.do(ChangeStatus, T0 + timedelta(seconds=10), to="resolved", reason="fixed")
    assert log.due(T0 + timedelta(seconds=3600)) == []


def test_reopening_pages_again_and_restarts_escalation_even_after_an_acknowledgement() -> None:
    log = Log().open().deliver_all(T0)
    log.do(AcknowledgeIncident, T0 + timedelta(seconds=5))
    log.do(ChangeStatus, T0 + timedelta(seconds=10), to="resolved", reason="fixed")
    reopen = T0 + timedelta(seconds=1000)
    log.do(ChangeStatus, reopen, to="investigating", reason="back again")
    assert owed(log.due(reopen)) == [("oncall", 0, "reopened")]
    log.deliver_all(reopen)
    assert escalations(log.due(reopen + timedelta(seconds=300))) == [(1, ("manager",))]
    log.do(AcknowledgeIncident, reopen + timedelta(seconds=20))
    assert log.events[-1].type == "IncidentAcknowledged"  # acknowledging a reopened incident is news
    assert log.due(reopen + timedelta(seconds=300)) == []


@pytest.mark.parametrize(("to", "expected"), [
    ("critical", [("oncall", 0, "severity_raised")]),
    ("medium", []),  # lowered: nobody is paged (and the route no longer matches)
])
def test_a_raised_severity_pages_again(to: str, expected: list[tuple[str, int, str]]) -> None:
    log = Log().open().deliver_all(T0)
    log.do(ChangeSeverity, T0 + timedelta(seconds=5), severity=to)
    assert owed(log.due(T0 + timedelta(seconds=5))) == expected


def test_an_alert_joining_an_open_incident_pages_only_routes_that_ask() -> None:
    log = Log().open("payments", "high", team="payments")
    assert [r for r, _, _ in owed(log.due(T0))] == ["oncall", "alerts"]
    log.deliver_all(T0)
    alert = {"labels": {}, "starts_at": T0}
    log.do(AttachAlert, T0, fingerprint="first", **alert)  # the opening alert: its page was the opening one
    assert owed(log.due(T0)) == []
    log.do(AttachAlert, T0 + timedelta(seconds=30), fingerprint="second", **alert)
    assert owed(log.due(T0 + timedelta(seconds=30))) == [("alerts", 0, "alert")]


def test_a_failed_attempt_is_retried_after_its_backoff_then_given_up() -> None:
    log = Log().open()
    at = T0
    for attempt in range(1, NOTIFY.retries + 2):
        (action,) = owed_actions = [a for a in log.due(at) if isinstance(a, Deliver)]
        assert action.attempt == attempt, owed_actions
        log.act(action, at, ok=False)
        assert log.events[-1].data.will_retry is (attempt <= NOTIFY.retries)
        wait = backoff(action.page.notification_id, attempt, NOTIFY)
        assert timedelta(seconds=NOTIFY.backoff_s * 2 ** (attempt - 1)) <= wait
        assert [a for a in log.due(at + wait - timedelta(milliseconds=1)) if isinstance(a, Deliver)] == []
        at += wait
    assert [a for a in log.due(at + timedelta(days=1)) if isinstance(a, Deliver)] == []
    assert [e.type for e in log.events[1:]] == ["NotificationFailed"] * (NOTIFY.retries + 1)


def test_a_restarted_notifier_folding_the_same_log_owes_the_same() -> None:
    log = Log().open()
    (action,) = log.due(T0)
    log.act(action, T0, ok=False)
    again: Pager | None = None
    for event in log.events:
        again = evolve(again, event, NOTIFY)
    assert again == log.pager
    later = T0 + timedelta(seconds=1000)
    assert due(again, later, NOTIFY) == log.due(later)
    # Folding an event twice (redelivery) changes nothing.
    assert evolve(again, log.events[-1], NOTIFY) == again


def test_recording_the_same_attempt_twice_is_one_event() -> None:
    log = Log().open()
    (action,) = log.due(T0)
    page = action.page

    command = RecordNotification(
        command_id=attempt_command_id(page.notification_id, 1), incident_id=INCIDENT, actor=ALICE, issued_at=T0,
        notification_id=page.notification_id, receiver=page.receiver, kind="webhook", attempt=1, outcome="sent",
        level=0, trigger="opened", trigger_event_id=page.trigger_event_id)
    decision = execute(command, log.state, T0)
    assert len(decision.events) == 1
    assert decide(command, decision.state) == []


def test_a_failed_attempt_without_an_error_is_refused() -> None:
    log = Log().open()
    (action,) = log.due(T0)
    with pytest.raises(Exception, match="error"):
        log.do(RecordNotification, T0, notification_id=action.page.notification_id, receiver="oncall",
               kind="webhook", attempt=1, outcome="failed", level=0, trigger="opened",
               trigger_event_id=action.page.trigger_event_id)


def test_an_incident_opened_before_paging_knew_it_owes_nothing() -> None:
    log = Log().open()
    assert evolve(None, log.do(AcknowledgeIncident).events[-1], NOTIFY) is None


def test_status_is_tracked() -> None:
    log = Log().open().do(ChangeStatus, to="investigating")
    assert log.pager is not None and log.pager.status is Status.INVESTIGATING


HOUR = timedelta(seconds=NOTIFY.max_age_s)
SECOND = timedelta(seconds=1)


def _opened(log: Log) -> datetime:
    return T0


def _escalation_deadline(log: Log) -> datetime:
    log.deliver_all(T0)
    return T0 + timedelta(seconds=300)


def _retry_time(log: Log) -> datetime:
    (action,) = log.due(T0)
    log.act(action, T0, ok=False)
    return T0 + backoff(action.page.notification_id, 1, NOTIFY)


def _name(action: Deliver | Escalate) -> tuple[str, str]:
    return ("page", action.page.receiver) if isinstance(action, Deliver) else ("escalate", action.receivers[0])


@pytest.mark.parametrize(("story", "what", "late", "is_due"), [
    (_opened, ("page", "oncall"), HOUR - SECOND, True),
    (_opened, ("page", "oncall"), HOUR + SECOND, False),
    # The deadline counts, not the open: 300 s + almost an hour after the open is still due.
    (_escalation_deadline, ("escalate", "manager"), HOUR - SECOND, True),
    (_escalation_deadline, ("escalate", "manager"), HOUR + SECOND, False),
    (_retry_time, ("page", "oncall"), HOUR - SECOND, True),
    (_retry_time, ("page", "oncall"), HOUR + SECOND, False),
])
def test_what_became_owed_longer_ago_than_max_age_is_not_due(story, what: tuple[str, str], late: timedelta,
                                                              is_due: bool) -> None:
    log = Log().open()
    now = story(log) + late
    assert log.pager is not None
    assert (what in [_name(a) for a in log.due(now)]) is is_due
    assert (what in [_name(a) for a in expired(log.pager, now, NOTIFY)]) is not is_due


def test_an_old_incident_reopened_now_pages_for_the_reopening_only() -> None:
    log = Log().open()  # opened at T0 and never paged (paging was not set up then)
    now = T0 + timedelta(days=2)
    log.do(ChangeStatus, now - timedelta(seconds=10), to="resolved", reason="fixed")
    log.do(ChangeStatus, now, to="investigating", reason="back again")
    assert owed(log.due(now)) == [("oncall", 0, "reopened")]
    assert [a.page.trigger for a in expired(log.pager, now, NOTIFY) if isinstance(a, Deliver)] == ["opened"]


def test_an_alert_joining_an_old_incident_now_pages() -> None:
    log = Log().open("payments", "high", team="payments")
    now = T0 + timedelta(days=2)
    alert = {"labels": {}, "starts_at": T0}
    log.do(AttachAlert, T0, fingerprint="first", **alert)
    log.do(AttachAlert, now, fingerprint="second", **alert)
    assert owed(log.due(now)) == [("alerts", 0, "alert")]


@pytest.mark.parametrize(("story", "at", "is_settled"), [
    (lambda log: log.deliver_all(T0).do(AcknowledgeIncident, T0), T0, True),  # paged and acknowledged
    (lambda log: log.deliver_all(T0), T0, False),  # escalation to come
    (lambda log: log, T0, False),  # the page is owed
    (lambda log: log, T0 + timedelta(days=1), True),  # ...for too long
    (lambda log: log.act(log.due(T0)[0], T0, ok=False), T0, False),  # a retry to come
    (lambda log: log.deliver_all(T0).do(ChangeStatus, T0, to="resolved", reason="fixed"), T0, True),
])
def test_settled_means_nothing_owed_now_or_later_without_a_new_event(story, at: datetime, is_settled: bool) -> None:
    log = story(Log().open())
    assert log.pager is not None
    assert settled(log.pager, at, NOTIFY) is is_settled
    if is_settled:  # nothing owed then, nor any time after
        assert all(log.due(at + timedelta(seconds=s)) == [] for s in (0, 300, 900, 3600, 86400))
