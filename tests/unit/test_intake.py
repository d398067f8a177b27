"""Alert intake, pure: what an alert says, how a group reacts to alerts and to its
incident's changes, and the intake, decider and watch together in memory."""

from __future__ import annotations

import hashlib
from collections import deque
from datetime import UTC, datetime, timedelta
from uuid import UUID, uuid4

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from contracts.alerts import Alert
from contracts.commands import AttachAlert, ChangeStatus, CommandBase, OpenIncident, ResolveAlert
from contracts.common import Actor, Severity, Status
from contracts.events import EventEnvelope
from streams.decider import Rejected
from streams.incident_log import execute
from streams.alert_reading import (
    NOTICE_ADAPTER,
    AlertNotice,
    IncidentNotice,
    alert_notice,
    fingerprint,
    group_key,
    refusal,
    service_of,
    severity_of,
    title_of,
)
from streams.intake import Group, Intake, Watched, incident_id_for, react, watch
from foundation.settings import IntakeSettings

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
DEFAULT = IntakeSettings()
X = UUID("00000000-0000-4000-8000-00000000000a")
Y = UUID("00000000-0000-4000-8000-00000000000b")


def alert(service: str | None = "checkout", name: str = "HighErrorRate", status: str = "firing",
          at: datetime = T0, **extra: str) -> Alert:
    labels = {"alertname": name, **({"service": service} if service is not None else {}), **extra}
    return Alert(status=status, labels=labels, starts_at=at,
                 ends_at=at + timedelta(minutes=5) if status == "resolved" else None)


def notice(a: Alert, received: datetime = T0) -> AlertNotice:
    return alert_notice(a, received, DEFAULT)


# --- what an alert says ------------------------------------------------------------


def test_fingerprint_is_the_given_one_else_derived_from_sorted_labels() -> None:
    given_fp = Alert(fingerprint="abc", status="firing", labels={"a": "1"}, starts_at=T0)
    assert fingerprint(given_fp) == "abc"
    one = Alert(status="firing", labels={"b": "2", "a": "1"}, starts_at=T0)
    other = Alert(status="resolved", labels={"a": "1", "b": "2"}, starts_at=T0 + timedelta(hours=1),
                  annotations={"summary": "differs"})
    expected = hashlib.sha256(b'{"a":"1","b":"2"}').hexdigest()[:32]
    assert fingerprint(one) == fingerprint(other) == expected


@pytest.mark.parametrize(("labels", "intake", "key"), [
    ({"service": "checkout", "env": "prod"}, DEFAULT, "checkout"),
    ({"env": "prod"}, DEFAULT, "unknown"),
    ({"service": ""}, DEFAULT, "unknown"),
    ({"service": "a&b=c", "env": "x&y"}, IntakeSettings(group_by=["service", "env"]), "service=a%26b%3Dc&env=x%26y"),
    ({"service": "checkout", "env": "prod"}, IntakeSettings(group_by=["env", "service"]),
     "env=prod&service=checkout"),
    ({"service": "checkout"}, IntakeSettings(group_by=["service", "env"]), "service=checkout&env="),
    ({"app": "cart", "service": "x"}, IntakeSettings(service_label="app", group_by=["app"]), "cart"),
    ({"team": "pay"}, IntakeSettings(group_by=["team"]), "pay"),
])
def test_group_key_is_the_group_by_values_in_order(labels, intake, key) -> None:
    assert group_key(labels, intake) == key


def test_service_comes_from_the_configured_label() -> None:
    assert service_of({"service": "checkout"}, DEFAULT) == "checkout"
    assert service_of({"app": "cart"}, IntakeSettings(service_label="app")) == "cart"
    assert service_of({"app": "cart"}, DEFAULT) == "unknown"


@pytest.mark.parametrize(("labels", "annotations", "title"), [
    ({"alertname": "HighErrorRate"}, {"summary": "5xx above 5%"}, "HighErrorRate: 5xx above 5%"),
    ({"alertname": "HighErrorRate"}, {}, "HighErrorRate"),
    ({"service": "checkout"}, {"summary": "5xx above 5%"}, "5xx above 5%"),
    ({"service": "checkout", "env": "prod"}, {}, "alert env=prod, service=checkout"),
])
def test_title_from_alertname_and_summary(labels, annotations, title) -> None:
    assert title_of(Alert(status="firing", labels=labels, annotations=annotations, starts_at=T0)) == title


def test_a_long_title_is_clipped_to_what_an_incident_holds() -> None:
    long = Alert(status="firing", labels={"alertname": "A" * 500}, starts_at=T0)
    assert len(title_of(long)) == 300 and title_of(long).endswith("…")


@pytest.mark.parametrize(("value", "severity"), [
    ("critical", Severity.CRITICAL), ("page", Severity.CRITICAL), ("Warning", Severity.MEDIUM),
    ("error", Severity.HIGH), ("info", Severity.LOW), ("bogus", Severity.MEDIUM), (None, Severity.MEDIUM),
])
def test_severity_through_the_label_mapping(value, severity) -> None:
    labels = {"service": "checkout", **({"severity": value} if value is not None else {})}
    assert severity_of(labels, DEFAULT) == severity


def test_severity_label_and_default_are_configurable() -> None:
    intake = IntakeSettings(severity_label="priority", severity_map={"p1": "critical"}, default_severity="low")
    assert severity_of({"priority": "P1"}, intake) == Severity.CRITICAL
    assert severity_of({"severity": "critical"}, intake) == Severity.LOW


@pytest.mark.parametrize(("a", "refused"), [
    (alert(), None),
    (alert(team="pay\x00ments"), ("labels.team", "must not contain NUL characters")),
    (Alert(status="firing", labels={"service": "x"}, annotations={"note\x00": "y"}, starts_at=T0),
     ("annotations", "must not contain NUL characters")),
    (alert(service="s" * 201), ("labels.service", "must be at most 200 characters")),
    (alert(team="\ud800"), ("labels.team", "must be valid Unicode (no unpaired surrogates)")),
])
def test_refusal_names_the_field(a: Alert, refused) -> None:
    assert refusal(a, DEFAULT) == refused


def test_notices_round_trip_through_json() -> None:
    n = notice(alert())
    assert NOTICE_ADAPTER.validate_json(n.model_dump_json()) == n
    i = IncidentNotice(group_key="x", incident_id=X, change="resolved", version=3, attached=2)
    assert NOTICE_ADAPTER.validate_json(i.model_dump_json()) == i


# --- react: given a group, when a notice, then commands --------------------------


def only(commands, kind):
    return [c for c in commands if isinstance(c, kind)]


def test_a_first_firing_alert_opens_an_incident_and_attaches_to_it() -> None:
    a = alert(severity="critical", team="payments")
    a = a.model_copy(update={"annotations": {"summary": "5xx above 5%", "description": "look at the LB"},
                             "source": "prometheus"})
    n = notice(a, received=T0 + timedelta(seconds=3))
    reaction = react(n, Group(), DEFAULT)
    opened, attached = reaction.commands
    assert isinstance(opened, OpenIncident) and isinstance(attached, AttachAlert)
    assert opened.incident_id == attached.incident_id == incident_id_for(n, None)
    assert (opened.title, opened.service, opened.severity) == ("HighErrorRate: 5xx above 5%", "checkout", "critical")
    assert opened.description == "look at the LB" and opened.labels == a.labels
    assert opened.actor == Actor(kind="producer", id="prometheus")
    assert opened.issued_at == attached.issued_at == T0 + timedelta(seconds=3)
    assert (attached.fingerprint, attached.alertname, attached.starts_at) == (n.fingerprint, "HighErrorRate", T0)
    assert attached.annotations == a.annotations and attached.source == "prometheus"
    assert reaction.group == Group(incident_id=opened.incident_id, firing=frozenset({n.fingerprint}), attached=1)


def test_a_firing_alert_joins_the_unresolved_incident_of_its_group() -> None:
    group = Group(incident_id=X, firing=frozenset({"f1"}), attached=1)
    n = notice(alert(name="LatencyHigh"))
    reaction = react(n, group, DEFAULT)
    (attached,) = reaction.commands
    assert isinstance(attached, AttachAlert) and attached.incident_id == X
    assert reaction.group.firing == {"f1", n.fingerprint} and reaction.group.attached == 2


def test_the_same_alert_firing_again_sends_nothing() -> None:
    n = notice(alert())
    group = Group(incident_id=X, firing=frozenset({n.fingerprint}), attached=1)
    again = notice(alert(at=T0 + timedelta(minutes=1)), received=T0 + timedelta(minutes=2))
    assert react(again, group, DEFAULT).commands == ()
    assert react(again, group, DEFAULT).group == group


def test_after_its_incident_resolved_a_group_opens_a_new_one() -> None:
    n = notice(alert())
    group = Group(incident_id=X, resolved=True, firing=frozenset({n.fingerprint}), attached=1)
    reaction = react(n, group, DEFAULT)
    opened, attached = reaction.commands
    assert isinstance(opened, OpenIncident) and opened.incident_id not in (X, incident_id_for(n, None))
    assert opened.incident_id == incident_id_for(n, X) == attached.incident_id
    assert reaction.group.incident_id == opened.incident_id and not reaction.group.resolved


def test_a_resolved_alert_resolves_it_in_its_incident() -> None:
    n = notice(alert(status="resolved"))
    group = Group(incident_id=X, firing=frozenset({n.fingerprint, "other"}), attached=2)
    reaction = react(n, group, DEFAULT)
    (resolved,) = reaction.commands
    assert isinstance(resolved, ResolveAlert)
    assert (resolved.incident_id, resolved.fingerprint, resolved.ends_at) == (X, n.fingerprint, T0 + timedelta(minutes=5))
    assert resolved.mitigate_when_last is True
    assert reaction.group.firing == {"other"}
    off = IntakeSettings(mitigate_when_last_resolved=False)
    assert react(n, group, off).commands[0].mitigate_when_last is False


def test_a_resolved_alert_without_end_resolves_when_received() -> None:
    a = Alert(status="resolved", labels={"service": "checkout"}, starts_at=T0)
    n = notice(a, received=T0 + timedelta(hours=1))
    (resolved,) = react(n, Group(incident_id=X, firing=frozenset({n.fingerprint}), attached=1), DEFAULT).commands
    assert resolved.ends_at == T0 + timedelta(hours=1)


def test_resolved_alerts_of_still_firing_alerts_reach_a_resolved_incident_too() -> None:
    n = notice(alert(status="resolved"))
    group = Group(incident_id=X, resolved=True, firing=frozenset({n.fingerprint}), attached=1)
    (resolved,) = react(n, group, DEFAULT).commands
    assert resolved.incident_id == X


@pytest.mark.parametrize("group", [Group(), Group(incident_id=X, firing=frozenset({"other"}), attached=1)])
def test_a_resolved_alert_nobody_attached_sends_nothing(group: Group) -> None:
    reaction = react(notice(alert(status="resolved")), group, DEFAULT)
    assert reaction.commands == () and reaction.group == group


def test_redelivered_notices_give_the_same_commands() -> None:
    n = notice(alert())
    first, second = react(n, Group(), DEFAULT), react(n, Group(), DEFAULT)
    assert first == second
    assert [c.command_id for c in first.commands] == [c.command_id for c in second.commands]


def incident_notice(change: str, incident: UUID = X, version: int = 2, attached: int = 0) -> IncidentNotice:
    return IncidentNotice(group_key="checkout", incident_id=incident, change=change,
                          version=version, attached=attached)


@pytest.mark.parametrize(("group", "change", "after", "refused"), [
    # our own incident reported opened: our attaches may be ahead of its count
    (Group(incident_id=X, firing=frozenset({"f"}), attached=1), incident_notice("opened", version=1),
     Group(incident_id=X, firing=frozenset({"f"}), attached=1, incident_version=1), range(0)),
    # an incident someone else opened for the group: adopted when the group has none
    (Group(), incident_notice("opened", Y, version=1), Group(incident_id=Y, incident_version=1), range(0)),
    (Group(incident_id=X, resolved=True, firing=frozenset({"f"}), attached=1), incident_notice("opened", Y, version=1),
     Group(incident_id=Y, incident_version=1), range(0)),
    # ... but not while it has an unresolved one
    (Group(incident_id=X, attached=1), incident_notice("opened", Y, version=1), Group(incident_id=X, attached=1), range(0)),
    # resolved: let go, firing kept for late resolutions; attaches beyond its count were refused
    (Group(incident_id=X, firing=frozenset({"f", "g"}), attached=2), incident_notice("resolved", version=4, attached=2),
     Group(incident_id=X, resolved=True, firing=frozenset({"f", "g"}), attached=2, incident_version=4), range(0)),
    (Group(incident_id=X, firing=frozenset({"f", "g", "h"}), attached=3), incident_notice("resolved", version=4, attached=1),
     Group(incident_id=X, resolved=True, firing=frozenset({"f", "g", "h"}), attached=1, incident_version=4), range(1, 3)),
    (Group(incident_id=Y, attached=1), incident_notice("resolved", X), Group(incident_id=Y, attached=1), range(0)),
    # reopened: taken back; another group's... or adopted when free
    (Group(incident_id=X, resolved=True, attached=2, incident_version=4), incident_notice("reopened", version=6, attached=2),
     Group(incident_id=X, attached=2, incident_version=6), range(0)),
    (Group(incident_id=Y, resolved=True, attached=1), incident_notice("reopened", X, version=6, attached=3),
     Group(incident_id=X, attached=3, incident_version=6), range(0)),
    (Group(incident_id=Y, attached=1), incident_notice("reopened", X, version=6), Group(incident_id=Y, attached=1), range(0)),
    # a repeated notice changes nothing
    (Group(incident_id=X, resolved=True, attached=1, incident_version=4), incident_notice("resolved", version=4, attached=0),
     Group(incident_id=X, resolved=True, attached=1, incident_version=4), range(0)),
    (Group(incident_id=X, attached=3, incident_version=6), incident_notice("resolved", version=4, attached=1),
     Group(incident_id=X, attached=3, incident_version=6), range(0)),
])
def test_incident_changes(group: Group, change: IncidentNotice, after: Group, refused: range) -> None:
    reaction = react(change, group, DEFAULT)
    assert reaction.commands == ()
    assert reaction.group == after
    assert reaction.refused == refused


# --- watch: which events a group hears about --------------------------------------


def envelope(kind: str, version: int, incident: UUID = X, **data) -> dict:
    return {"type": kind, "version": version, "incident_id": str(incident), "data": data}


def test_watch_reports_openings_resolutions_and_reopenings_and_counts_attaches() -> None:
    watched, opened = watch(None, envelope("IncidentOpened", 1, service="checkout", labels={"team": "x"}), DEFAULT)
    assert watched == Watched(group_key="checkout", version=1)
    assert (opened.change, opened.group_key, opened.incident_id, opened.version) == ("opened", "checkout", X, 1)
    watched, nothing = watch(watched, envelope("AlertAttached", 2, fingerprint="f"), DEFAULT)
    watched, _ = watch(watched, envelope("NoteAdded", 3, text="n"), DEFAULT)
    watched, _ = watch(watched, envelope("AlertAttached", 4, fingerprint="g"), DEFAULT)
    assert nothing is None and watched == Watched(group_key="checkout", version=4, attached=2)
    watched, mitigated = watch(watched, envelope("StatusChanged", 5, **{"from": "open", "to": "mitigated"}), DEFAULT)
    assert mitigated is None
    watched, resolved = watch(watched, envelope("StatusChanged", 6, **{"from": "mitigated", "to": "resolved"}), DEFAULT)
    assert (resolved.change, resolved.version, resolved.attached) == ("resolved", 6, 2)
    watched, reopened = watch(watched, envelope("StatusChanged", 7, **{"from": "resolved", "to": "investigating"}), DEFAULT)
    assert (reopened.change, reopened.version) == ("reopened", 7)


def test_watch_skips_repeats_and_what_it_never_saw_opened() -> None:
    watched = Watched(group_key="checkout", version=4, attached=2)
    assert watch(watched, envelope("AlertAttached", 4), DEFAULT) == (watched, None)
    assert watch(watched, envelope("IncidentOpened", 1, service="x"), DEFAULT) == (watched, None)
    assert watch(None, envelope("AlertAttached", 2), DEFAULT) == (None, None)
    assert watch(None, {"type": "IncidentOpened"}, DEFAULT) == (None, None)


def test_an_incident_opened_by_hand_lands_in_the_group_of_its_service() -> None:
    watched, _ = watch(None, envelope("IncidentOpened", 1, service="checkout", labels={"service": "other"}), DEFAULT)
    assert watched.group_key == group_key({"service": "checkout"}, DEFAULT)
    watched, _ = watch(None, envelope("IncidentOpened", 1, service="unknown", labels={}), DEFAULT)
    assert watched.group_key == group_key({}, DEFAULT)  # an alert without service label


# --- intake, decider and watch together, in memory --------------------------------


class Loop:
    """The worker's topology in memory: notices → intake → commands → decider → events →
    watch → notices. Queues are explicit so a test can choose what happens first."""

    def __init__(self, intake: IntakeSettings = DEFAULT) -> None:
        self.settings = intake
        self.intake = Intake(intake)
        self.groups: dict[str, Group] = {}
        self.incidents: dict[UUID, object] = {}
        self.watched: dict[UUID, Watched] = {}
        self.log: list[EventEnvelope] = []
        self.notices: deque = deque()
        self.refused: list[CommandBase] = []
        self.lost: list[int] = []

    def send(self, *alerts: Alert) -> None:
        self.notices.extend(alert_notice(a, T0, self.settings) for a in alerts)

    def decide(self, command: CommandBase) -> None:
        state = self.incidents.get(command.incident_id)
        try:
            decision = execute(command, state, command.issued_at)
        except Rejected:
            self.refused.append(command)
            return
        self.incidents[command.incident_id] = decision.state
        for event in decision.events:
            self.log.append(event)
            raw = event.model_dump(mode="json", by_alias=True)
            watched, change = watch(self.watched.get(event.incident_id), raw, self.settings)
            if watched is not None:
                self.watched[event.incident_id] = watched
            if change is not None:
                self.notices.append(change)

    def step(self) -> None:
        notice = self.notices.popleft()
        handled = self.intake.handle(notice, self.groups.get(notice.group_key, Group()))
        self.groups[notice.group_key] = handled.group
        self.lost.extend(handled.lost)
        for command in handled.commands:
            self.decide(command)

    def run(self) -> None:
        while self.notices:
            self.step()

    def events(self, kind: str) -> list[EventEnvelope]:
        return [e for e in self.log if e.type == kind]


def test_a_thousand_alerts_across_fifty_services_open_fifty_incidents() -> None:
    loop = Loop()
    alerts = [alert(service=f"svc-{n % 50}", name=f"Alert{n // 50}") for n in range(1000)]
    loop.send(*alerts)
    loop.run()
    assert len(loop.events("IncidentOpened")) == 50
    assert len(loop.events("AlertAttached")) == 1000
    assert {e.data.service for e in loop.events("IncidentOpened")} == {f"svc-{n}" for n in range(50)}
    size = len(loop.log)
    loop.send(*alerts)  # the same alerts again
    loop.run()
    assert len(loop.log) == size and not loop.refused


def test_the_last_alert_resolving_mitigates_the_incident() -> None:
    loop = Loop()
    loop.send(alert(name="A"), alert(name="B"))
    loop.run()
    loop.send(alert(name="A", status="resolved"))
    loop.run()
    assert [e.data.firing_left for e in loop.events("AlertResolved")] == [1]
    loop.send(alert(name="B", status="resolved"))
    loop.run()
    (moved,) = loop.events("StatusChanged")
    assert (moved.data.to, moved.actor.kind) == (Status.MITIGATED, "system")
    loop.send(alert(name="B", status="resolved"))  # resolved again: nothing
    loop.run()
    assert len(loop.events("AlertResolved")) == 2


def test_when_mitigation_is_off_the_incident_stays_open() -> None:
    loop = Loop(IntakeSettings(mitigate_when_last_resolved=False))
    loop.send(alert(name="A"))
    loop.send(alert(name="A", status="resolved"))
    loop.run()
    assert len(loop.events("AlertResolved")) == 1 and not loop.events("StatusChanged")


def resolve_by_hand(loop: Loop, incident: UUID) -> None:
    loop.decide(ChangeStatus(command_id=uuid4(), incident_id=incident, actor=Actor(kind="user", id="alice"),
                             issued_at=T0, to="resolved", reason="fixed"))


def test_after_a_resolution_the_next_firing_alert_opens_a_new_incident() -> None:
    loop = Loop()
    loop.send(alert(name="A"))
    loop.run()
    (first,) = loop.events("IncidentOpened")
    resolve_by_hand(loop, first.incident_id)
    loop.run()
    loop.send(alert(name="A"))  # still firing (a repeat): opens a new incident
    loop.run()
    second = loop.events("IncidentOpened")[-1]
    assert second.incident_id != first.incident_id
    assert loop.events("AlertAttached")[-1].incident_id == second.incident_id
    loop.send(alert(name="A", status="resolved"))  # reaches the new incident
    loop.run()
    assert loop.events("AlertResolved")[-1].incident_id == second.incident_id


def test_alerts_refused_by_an_incident_resolved_meanwhile_open_the_next_one() -> None:
    loop = Loop()
    loop.send(alert(name="A"))
    loop.run()
    (first,) = loop.events("IncidentOpened")
    resolve_by_hand(loop, first.incident_id)  # its notice is queued behind the next alerts
    loop.send(alert(name="B"), alert(name="C"))
    loop.notices.rotate(-1)  # B and C are routed before the group hears of the resolution
    assert loop.notices[-1].kind == "incident"
    loop.step()
    loop.step()
    assert [c.fingerprint for c in loop.refused] == [notice(alert(name=n)).fingerprint for n in "BC"]
    loop.run()
    second = loop.events("IncidentOpened")[-1]
    assert second.incident_id != first.incident_id
    attached = [e for e in loop.events("AlertAttached") if e.incident_id == second.incident_id]
    assert [e.data.alertname for e in attached] == ["B", "C"]
    assert loop.lost == []


def test_refused_alerts_no_longer_remembered_are_reported_lost() -> None:
    loop = Loop()
    loop.intake = Intake(DEFAULT, remember=1)
    loop.send(alert(name="A"))
    loop.run()
    (first,) = loop.events("IncidentOpened")
    resolve_by_hand(loop, first.incident_id)
    loop.send(alert(name="B"), alert(name="C"))
    loop.notices.rotate(-1)
    loop.run()
    assert loop.lost == [1]  # B was pushed out of memory by C; C opened the next incident
    assert [e.data.alertname for e in loop.events("AlertAttached")] == ["A", "C"]


def test_an_incident_opened_by_hand_adopts_the_alerts_of_its_service() -> None:
    loop = Loop()
    loop.decide(OpenIncident(command_id=uuid4(), incident_id=Y, actor=Actor(kind="user", id="alice"),
                             issued_at=T0, title="checkout slow", service="checkout", severity="high"))
    loop.run()
    loop.send(alert(name="A"))
    loop.run()
    assert len(loop.events("IncidentOpened")) == 1
    assert loop.events("AlertAttached")[0].incident_id == Y


def test_a_reopened_incident_takes_its_alerts_back() -> None:
    loop = Loop()
    loop.send(alert(name="A"))
    loop.run()
    (first,) = loop.events("IncidentOpened")
    resolve_by_hand(loop, first.incident_id)
    loop.run()
    loop.decide(ChangeStatus(command_id=uuid4(), incident_id=first.incident_id, actor=Actor(kind="user", id="alice"),
                             issued_at=T0, to="investigating", reason="came back"))
    loop.run()
    loop.send(alert(name="B"))
    loop.run()
    assert len(loop.events("IncidentOpened")) == 1
    assert loop.events("AlertAttached")[-1].incident_id == first.incident_id


# --- properties ------------------------------------------------------------------

names = st.sampled_from(["A", "B", "C"])
services = st.sampled_from(["checkout", "cart"])
steps = st.lists(st.tuples(services, names, st.sampled_from(["firing", "resolved"])), max_size=30)


@settings(max_examples=200, deadline=None)
@given(steps)
def test_reacting_again_on_the_new_group_sends_nothing(sequence) -> None:
    group = Group()
    for service, name, status in sequence:
        n = notice(alert(service="checkout", name=name, status=status))
        reaction = react(n, group, DEFAULT)
        assert react(n, reaction.group, DEFAULT).commands == ()
        group = reaction.group


@settings(max_examples=100, deadline=None)
@given(steps)
def test_every_service_has_at_most_one_unresolved_incident_and_nothing_is_refused(sequence) -> None:
    loop = Loop()
    for service, name, status in sequence:
        loop.send(alert(service=service, name=name, status=status))
        loop.run()
    assert not loop.refused
    opened = loop.events("IncidentOpened")
    assert len({e.data.service for e in opened}) == len(opened)
    firing = {(e.incident_id, e.data.fingerprint) for e in loop.events("AlertAttached")}
    resolved = [(e.incident_id, e.data.fingerprint) for e in loop.events("AlertResolved")]
    assert set(resolved) <= firing
