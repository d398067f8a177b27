"""Silences: matchers, the silence decider (given these events, when this command, then
these events), the rules the intake consults, and recurring maintenance windows. Pure."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from uuid import UUID, uuid5

import pytest
from pydantic import ValidationError

from contracts.commands import (
    AcknowledgeIncident,
    CommandBase,
    CreateSilence,
    ExpireSilence,
    OpenIncident,
    RecordSilencedAlert,
)
from contracts.common import Actor, Severity
from contracts.events import AlertSilenced, EventData, SilenceCreated, SilenceExpired
from contracts.silences import Matcher
from foundation.chain import verify
from foundation.maintenance import MaintenanceWindow, window_stream
from streams.decider import Rejected
from streams.incident_log import execute, fold
from streams.silence import SilenceRule, rule_of
from streams.silence_book import Rules, Silencer

SILENCE = UUID("00000000-0000-4000-8000-00000000051c")
OTHER = UUID("00000000-0000-4000-8000-00000000051d")
T0 = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
USER = Actor(kind="user", id="ana")
DB = [Matcher(label="service", op="=", value="db")]


def command(cls: type[CommandBase], n: int, at: datetime = T0, stream: UUID = SILENCE, **fields) -> CommandBase:
    return cls(command_id=uuid5(stream, f"{cls.__name__}{n}"), incident_id=stream, actor=USER, issued_at=at, **fields)


def create(n: int = 0, **fields) -> CommandBase:
    return command(CreateSilence, n, **({"matchers": DB, "starts_at": T0, "ends_at": T0 + timedelta(hours=2),
                                         "comment": "db migration"} | fields))


def silenced(n: int = 0, fingerprint: str = "fp1", stream: UUID = SILENCE, **fields) -> CommandBase:
    return command(RecordSilencedAlert, n, T0 + timedelta(minutes=5), stream, fingerprint=fingerprint,
                   alertname="DbDown", labels={"service": "db"}, starts_at=T0, **fields)


def run(*commands: CommandBase):
    """Execute `commands` in order from nothing: (events of the last one, state, all events)."""
    state, log, last = None, [], []
    for cmd in commands:
        decision = execute(cmd, state, cmd.issued_at)
        state, last = decision.state, decision.events
        log.extend(decision.events)
    return [e.data for e in last], state, log


@pytest.mark.parametrize(("op", "value", "label", "matches"), [
    ("=", "db", "db", True), ("=", "db", "db2", False),
    ("!=", "db", "db", False), ("!=", "db", "api", True),
    ("=~", "db|cache", "cache", True), ("=~", "db", "db-replica", False),  # anchored at both ends
    ("!~", "db.*", "db-replica", False), ("!~", "db.*", "api", True),
    ("=", "", None, True), ("!=", "", None, False),  # a label the alert lacks reads as ""
])
def test_a_matcher_compares_one_label_as_alertmanager_does(op, value, label, matches) -> None:
    labels = {} if label is None else {"service": label}
    assert Matcher(label="service", op=op, value=value).matches(labels) is matches


@pytest.mark.parametrize(("raw", "field"), [
    ({"label": "service", "op": "=~", "value": "db("}, "value"),
    ({"label": "service", "op": "~", "value": "db"}, "op"),
    ({"label": "9lives", "op": "=", "value": "db"}, "label"),
])
def test_a_bad_matcher_is_refused_naming_what_is_wrong(raw, field) -> None:
    with pytest.raises(ValidationError) as err:
        Matcher.model_validate(raw)
    where = {str(part) for problem in err.value.errors() for part in problem["loc"]}
    assert field in where or (field == "value" and "regular expression" in str(err.value))


@pytest.mark.parametrize(("given", "when", "then"), [
    ([], create(), [SilenceCreated(matchers=DB, starts_at=T0, ends_at=T0 + timedelta(hours=2),
                                   comment="db migration", by="ana")]),
    ([create()], create(), []),  # the same command again
    ([create()], create(1), []),  # a silence that exists is created once
    ([create()], command(ExpireSilence, 0, T0 + timedelta(minutes=1), reason="done early"),
     [SilenceExpired(by="ana", reason="done early")]),
    ([create(), command(ExpireSilence, 0)], command(ExpireSilence, 1), []),  # expired already
    ([create()], command(ExpireSilence, 0, T0 + timedelta(hours=3)), []),  # over already
    ([create()], silenced(), [AlertSilenced(fingerprint="fp1", alertname="DbDown", labels={"service": "db"},
                                            starts_at=T0)]),
    ([create(), silenced()], silenced(1), []),  # the producer re-sent the same alert
    ([create(), silenced()], silenced(1, "fp2"), [AlertSilenced(fingerprint="fp2", alertname="DbDown",
                                                               labels={"service": "db"}, starts_at=T0)]),
])
def test_the_silence_decider(given: list[CommandBase], when: CommandBase, then: list[EventData]) -> None:
    assert run(*given, when)[0] == then


@pytest.mark.parametrize(("given", "when", "code", "field"), [
    ([], create(ends_at=T0), "validation_error", "ends_at"),
    ([], command(ExpireSilence, 0), "not_found", None),
    ([], silenced(), "not_found", None),
    ([silenced(stream=window_stream("nightly"), window="nightly")],
     command(ExpireSilence, 0, stream=window_stream("nightly")), "validation_error", "id"),
    ([create()], command(AcknowledgeIncident, 0), "not_found", None),  # an incident command on a silence
    ([command(OpenIncident, 0, title="t", service="db", severity=Severity.HIGH)], create(), "not_found", None),
])
def test_the_silence_decider_refuses(given, when, code, field) -> None:
    with pytest.raises(Rejected) as rejected:
        run(*given, when)
    assert (rejected.value.code, rejected.value.field) == (code, field)


def test_a_maintenance_window_stream_starts_with_what_it_swallowed() -> None:
    stream = window_stream("nightly")
    facts, state, log = run(silenced(stream=stream, window="nightly"))
    assert facts[0].window == "nightly" and state.window == "nightly"
    assert rule_of(stream, state) is None  # its rule lives in settings, not on the topic
    assert window_stream("nightly") == stream != window_stream("weekly")


def test_a_silence_stream_is_chained_and_folds_back_to_the_same_state() -> None:
    _, state, log = run(create(), silenced(), silenced(1, "fp2"), command(ExpireSilence, 0, T0 + timedelta(minutes=9)))
    assert [e.version for e in log] == [1, 2, 3, 4]
    assert verify(log).valid
    assert fold(log) == state
    assert state.expired and rule_of(SILENCE, state).expired


def test_deciding_again_on_the_new_state_changes_nothing() -> None:
    commands = [create(), silenced(), silenced(1, "fp2"), command(ExpireSilence, 0, T0 + timedelta(minutes=9))]
    state = None
    for cmd in commands:
        state = execute(cmd, state, cmd.issued_at).state
        assert execute(cmd, state, cmd.issued_at).events == []


def rule(silence_id: UUID = SILENCE, **fields) -> bytes:
    values = {"id": silence_id, "matchers": DB, "starts_at": T0, "ends_at": T0 + timedelta(hours=1)} | fields
    return SilenceRule(**values).model_dump_json().encode()


def test_rules_swallow_a_matching_alert_only_while_the_silence_is_active() -> None:
    rules = Rules([])
    rules.learn(rule())
    db = {"service": "db", "alertname": "DbDown"}
    assert rules.silencer(db, T0 - timedelta(seconds=1)) is None
    assert rules.silencer(db, T0) == Silencer(SILENCE)
    assert rules.silencer({"service": "api"}, T0) is None
    assert rules.silencer(db, T0 + timedelta(hours=1)) is None  # ends_at is exclusive
    rules.learn(rule(expired=True))  # the latest rule of a silence replaces the earlier
    assert rules.silencer(db, T0) is None
    rules.learn(b"not json")  # skipped, never fatal
    rules.learn(rule(OTHER))
    rules.learn(rule(SILENCE))
    assert rules.silencer(db, T0) == Silencer(SILENCE)  # the lowest id of those that match


WEEKLY = MaintenanceWindow(name="patching", matchers=DB, days=["sun"], start=time(23, 0), duration_m=120,
                           timezone="Europe/Berlin")


@pytest.mark.parametrize(("at", "open_"), [
    (datetime(2026, 5, 3, 20, 59, tzinfo=UTC), False),  # Sunday 22:59 in Berlin (UTC+2)
    (datetime(2026, 5, 3, 21, 0, tzinfo=UTC), True),  # Sunday 23:00 in Berlin
    (datetime(2026, 5, 3, 22, 59, tzinfo=UTC), True),  # past midnight, Monday 00:59 in Berlin
    (datetime(2026, 5, 3, 23, 0, tzinfo=UTC), False),
    (datetime(2026, 5, 4, 21, 30, tzinfo=UTC), False),  # Monday 23:30: not a window day
])
def test_a_maintenance_window_opens_on_its_days_in_its_time_zone(at: datetime, open_: bool) -> None:
    assert WEEKLY.covers(at) is open_
    rules = Rules([WEEKLY])
    expected = Silencer(window_stream("patching"), "patching") if open_ else None
    assert rules.silencer({"service": "db"}, at) == expected
    assert rules.silencer({"service": "api"}, at) is None


def test_a_maintenance_window_names_its_current_or_next_opening() -> None:
    assert WEEKLY.current_or_next(datetime(2026, 5, 1, tzinfo=UTC)) == (
        datetime(2026, 5, 3, 21, 0, tzinfo=UTC), datetime(2026, 5, 3, 23, 0, tzinfo=UTC))
    assert WEEKLY.current_or_next(datetime(2026, 5, 3, 22, 0, tzinfo=UTC))[0] == datetime(2026, 5, 3, 21, 0, tzinfo=UTC)


def test_a_maintenance_window_refuses_an_unknown_time_zone() -> None:
    with pytest.raises(ValidationError, match="timezone"):
        MaintenanceWindow(name="x", matchers=DB, start=time(1, 0), duration_m=10, timezone="Mars/Olympus")
