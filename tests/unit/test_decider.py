"""The incident decider: given these events, when this command, then these events
(or this rejection). Pure; milliseconds."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import UUID, uuid5

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from contracts.commands import (
    AcknowledgeIncident,
    AddNote,
    AssessImpact,
    AttachAlert,
    ChangeSeverity,
    ChangeStatus,
    CommandBase,
    CompleteCorrelation,
    CompleteCorrelationSource,
    ConfirmRootCause,
    OpenIncident,
    RecordFinding,
    ResolveAlert,
    StartCorrelation,
    StartCorrelationSource,
)
from contracts.common import SYSTEM, Actor, Severity, Status
from contracts.hypotheses import Hypothesis
from contracts.events import (
    AlertAttached,
    AlertResolved,
    CorrelationCompleted,
    CorrelationSourceCompleted,
    CorrelationSourceStarted,
    CorrelationStarted,
    EventData,
    FindingRecorded,
    ImpactAssessed,
    IncidentAcknowledged,
    IncidentOpened,
    NoteAdded,
    RootCauseConfirmed,
    SeverityChanged,
    StatusChanged,
)
from foundation.chain import verify
from streams.decider import Rejected, decide, evolve, initial_state
from streams.incident_log import execute, fold, record, state_as_of

INCIDENT = UUID("00000000-0000-4000-8000-000000000001")
RUN = UUID("00000000-0000-4000-8000-0000000000aa")
OTHER_RUN = UUID("00000000-0000-4000-8000-0000000000bb")
NOTE = UUID("00000000-0000-4000-8000-0000000000cc")
FINDING = UUID("00000000-0000-4000-8000-0000000000dd")
HYPOTHESIS = Hypothesis(rank=1, service="payments", signal="errors", confidence=0.8, path=["payments", "checkout"],
                        evidence=[FINDING])
T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
ALICE = Actor(kind="user", id="alice")
_serial = iter(range(1, 10**9))


def cmd(command_type: type[CommandBase], /, **fields) -> CommandBase:
    """A command on INCIDENT by alice with a fresh, deterministic command id."""
    defaults = dict(
        command_id=uuid5(INCIDENT, f"command-{next(_serial)}"),
        incident_id=INCIDENT,
        actor=ALICE,
        issued_at=T0,
    )
    return command_type(**{**defaults, **fields})


# --- given: short histories ---------------------------------------------------------

OPENED = IncidentOpened(title="checkout 5xx", service="checkout", severity=Severity.HIGH)


def moved(frm: Status, to: Status, reason: str | None = None) -> StatusChanged:
    return StatusChanged(from_=frm, to=to, reason=reason)


HISTORY: dict[Status, list[EventData]] = {
    Status.OPEN: [OPENED],
    Status.INVESTIGATING: [OPENED, moved(Status.OPEN, Status.INVESTIGATING)],
    Status.MITIGATED: [OPENED, moved(Status.OPEN, Status.MITIGATED)],
    Status.RESOLVED: [OPENED, moved(Status.OPEN, Status.RESOLVED, "false alarm")],
}
FIRING_A = AlertAttached(fingerprint="a", alertname="HighErrorRate", starts_at=T0)
FIRING_B = AlertAttached(fingerprint="b", alertname="HighLatency", starts_at=T0)
RUN_STARTED = CorrelationStarted(run_id=RUN, sources=["prometheus", "loki"])
DB_LATENCY = RootCauseConfirmed(service="db", signal="latency", by="bob")


def state_after(events: list[EventData]):
    state = initial_state
    for event in events:
        state = evolve(state, event)
    return state


# --- the transitions table of SPEC §3, written out as the SPEC writes it ---------------

SPEC_TABLE = """
from/to        open  investigating  mitigated  resolved
open           same  yes            yes        reason
investigating  no    same           yes        yes
mitigated      no    yes            same       yes
resolved       no    reason         no         same
"""


def _table_cases():
    header, *rows = [line.split() for line in SPEC_TABLE.strip().splitlines()]
    for row in rows:
        frm = Status(row[0])
        for to_name, cell in zip(header[1:], row[1:]):
            yield pytest.param(frm, Status(to_name), cell, id=f"{row[0]}->{to_name}")


@pytest.mark.parametrize(("frm", "to", "cell"), list(_table_cases()))
def test_transitions_table(frm: Status, to: Status, cell: str) -> None:
    state = state_after(HISTORY[frm])
    with_reason = cmd(ChangeStatus, to=to, reason="because")
    without_reason = cmd(ChangeStatus, to=to)
    if cell == "same":
        assert decide(with_reason, state) == []
        assert decide(without_reason, state) == []
    elif cell == "yes":
        assert decide(without_reason, state) == [moved(frm, to)]
        assert decide(with_reason, state) == [moved(frm, to, "because")]
    elif cell == "reason":
        with pytest.raises(Rejected) as refused:
            decide(without_reason, state)
        assert (refused.value.code, refused.value.field) == ("validation_error", "reason")
        with pytest.raises(Rejected):
            decide(cmd(ChangeStatus, to=to, reason="   "), state)
        assert decide(with_reason, state) == [moved(frm, to, "because")]
    else:
        for command in (with_reason, without_reason):
            with pytest.raises(Rejected) as refused:
                decide(command, state)
            assert refused.value.code == "invalid_transition"


# --- given / when / then -----------------------------------------------------------------

CASES = [
    # opening
    ("open a new incident", [],
     cmd(OpenIncident, title="checkout 5xx", service="checkout", severity="high"), [OPENED]),
    ("open keeps the idempotency key", [],
     cmd(OpenIncident, title="x", service="s", severity="low", idempotency_key="k1"),
     [IncidentOpened(title="x", service="s", severity=Severity.LOW, idempotency_key="k1")]),
    ("open an existing incident is a no-op", [OPENED],
     cmd(OpenIncident, title="again", service="checkout", severity="low"), []),
    ("open with expected_version 0", [],
     cmd(OpenIncident, title="checkout 5xx", service="checkout", severity="high",
         expected_version=0), [OPENED]),
    ("open with a stale expected_version", [],
     cmd(OpenIncident, title="x", service="s", severity="low", expected_version=2),
     ("version_conflict", "expected_version")),
    # the incident must exist
    *[(f"{kind.__name__} on an unknown incident", [], cmd(kind, **fields), ("not_found", None))
      for kind, fields in [
          (AcknowledgeIncident, {}),
          (ChangeStatus, {"to": "investigating"}),
          (ChangeSeverity, {"severity": "low"}),
          (AddNote, {"note_id": NOTE, "text": "hi"}),
          (AttachAlert, {"fingerprint": "a", "starts_at": T0}),
          (ResolveAlert, {"fingerprint": "a", "ends_at": T0}),
          (StartCorrelation, {"run_id": RUN, "sources": []}),
          (AssessImpact, {"slo": "avail", "burn_rate": 1, "error_budget_left": 0.5}),
          (ConfirmRootCause, {"service": "db"}),
      ]],
    # expected_version
    ("stale expected_version", [OPENED, FIRING_A],
     cmd(ChangeStatus, to="investigating", expected_version=1),
     ("version_conflict", "expected_version")),
    ("matching expected_version", [OPENED, FIRING_A],
     cmd(ChangeStatus, to="investigating", expected_version=2),
     [moved(Status.OPEN, Status.INVESTIGATING)]),
    ("a no-op still checks expected_version", [OPENED, FIRING_A],
     cmd(ChangeStatus, to="open", expected_version=7), ("version_conflict", "expected_version")),
    # acknowledge
    ("acknowledge", [OPENED], cmd(AcknowledgeIncident), [IncidentAcknowledged(by="alice")]),
    ("second acknowledge is a no-op", [OPENED, IncidentAcknowledged(by="bob")],
     cmd(AcknowledgeIncident), []),
    ("acknowledge a resolved incident", HISTORY[Status.RESOLVED], cmd(AcknowledgeIncident),
     ("invalid_transition", None)),
    # severity
    ("change severity", [OPENED], cmd(ChangeSeverity, severity="critical", reason="revenue"),
     [SeverityChanged(from_=Severity.HIGH, to=Severity.CRITICAL, reason="revenue")]),
    ("same severity is a no-op", [OPENED], cmd(ChangeSeverity, severity="high"), []),
    # notes
    ("add a note", [OPENED], cmd(AddNote, note_id=NOTE, text="rolled back"),
     [NoteAdded(note_id=NOTE, text="rolled back", author="alice")]),
    ("notes on a resolved incident", HISTORY[Status.RESOLVED],
     cmd(AddNote, note_id=NOTE, text="postmortem"),
     [NoteAdded(note_id=NOTE, text="postmortem", author="alice")]),
    # alerts
    ("attach an alert", [OPENED],
     cmd(AttachAlert, fingerprint="a", alertname="HighErrorRate", starts_at=T0), [FIRING_A]),
    ("the same alert firing again is a no-op", [OPENED, FIRING_A],
     cmd(AttachAlert, fingerprint="a", alertname="HighErrorRate", starts_at=T0), []),
    ("a resolved alert firing again attaches again",
     [OPENED, FIRING_A, AlertResolved(fingerprint="a", ends_at=T0, firing_left=0)],
     cmd(AttachAlert, fingerprint="a", alertname="HighErrorRate", starts_at=T0), [FIRING_A]),
    ("attach to a resolved incident", HISTORY[Status.RESOLVED],
     cmd(AttachAlert, fingerprint="a", starts_at=T0), ("invalid_transition", "fingerprint")),
    ("resolve an alert that is not firing is a no-op", [OPENED, FIRING_A],
     cmd(ResolveAlert, fingerprint="zzz", ends_at=T0), []),
    ("resolve one of two firing alerts", [OPENED, FIRING_A, FIRING_B],
     cmd(ResolveAlert, fingerprint="a", ends_at=T0),
     [AlertResolved(fingerprint="a", ends_at=T0, firing_left=1)]),
    ("resolve the last firing alert of an open incident", [OPENED, FIRING_A],
     cmd(ResolveAlert, fingerprint="a", ends_at=T0),
     [AlertResolved(fingerprint="a", ends_at=T0, firing_left=0),
      moved(Status.OPEN, Status.MITIGATED, "all alerts resolved")]),
    ("resolve the last firing alert while investigating",
     [*HISTORY[Status.INVESTIGATING], FIRING_A], cmd(ResolveAlert, fingerprint="a", ends_at=T0),
     [AlertResolved(fingerprint="a", ends_at=T0, firing_left=0),
      moved(Status.INVESTIGATING, Status.MITIGATED, "all alerts resolved")]),
    ("resolve the last alert without mitigate_when_last", [OPENED, FIRING_A],
     cmd(ResolveAlert, fingerprint="a", ends_at=T0, mitigate_when_last=False),
     [AlertResolved(fingerprint="a", ends_at=T0, firing_left=0)]),
    ("resolve the last alert of a mitigated incident", [*HISTORY[Status.MITIGATED], FIRING_A],
     cmd(ResolveAlert, fingerprint="a", ends_at=T0),
     [AlertResolved(fingerprint="a", ends_at=T0, firing_left=0)]),
    ("resolve the last alert of a resolved incident", [OPENED, FIRING_A,
                                                        moved(Status.OPEN, Status.RESOLVED, "ok")],
     cmd(ResolveAlert, fingerprint="a", ends_at=T0),
     [AlertResolved(fingerprint="a", ends_at=T0, firing_left=0)]),
    # correlation
    ("correlation on an open incident also starts investigating", [OPENED],
     cmd(StartCorrelation, run_id=RUN, sources=["prometheus", "loki"]),
     [RUN_STARTED, moved(Status.OPEN, Status.INVESTIGATING, "correlation started")]),
    ("correlation while investigating", HISTORY[Status.INVESTIGATING],
     cmd(StartCorrelation, run_id=RUN, sources=["prometheus", "loki"]), [RUN_STARTED]),
    ("correlation on a resolved incident changes no status", HISTORY[Status.RESOLVED],
     cmd(StartCorrelation, run_id=RUN, sources=["prometheus", "loki"]), [RUN_STARTED]),
    ("the same run again is a no-op", [OPENED, RUN_STARTED],
     cmd(StartCorrelation, run_id=RUN, sources=["prometheus"]), []),
    ("sources must not repeat", [OPENED],
     cmd(StartCorrelation, run_id=RUN, sources=["loki", "loki"]), ("validation_error", "sources")),
    ("a source starts", [OPENED, RUN_STARTED],
     cmd(StartCorrelationSource, run_id=RUN, source="loki"),
     [CorrelationSourceStarted(run_id=RUN, source="loki")]),
    ("a source starts twice", [OPENED, RUN_STARTED,
                               CorrelationSourceStarted(run_id=RUN, source="loki")],
     cmd(StartCorrelationSource, run_id=RUN, source="loki"), []),
    ("a source of an unknown run", [OPENED, RUN_STARTED],
     cmd(StartCorrelationSource, run_id=OTHER_RUN, source="loki"), ("validation_error", "run_id")),
    ("a source the run did not ask", [OPENED, RUN_STARTED],
     cmd(StartCorrelationSource, run_id=RUN, source="kubernetes"), ("validation_error", "source")),
    ("a source completes", [OPENED, RUN_STARTED],
     cmd(CompleteCorrelationSource, run_id=RUN, source="loki", outcome="no_data", attempts=1,
         duration_ms=12, queries=['{app="checkout"}']),
     [CorrelationSourceCompleted(run_id=RUN, source="loki", outcome="no_data", attempts=1,
                                 duration_ms=12, queries=['{app="checkout"}'])]),
    ("a source completes only once",
     [OPENED, RUN_STARTED, CorrelationSourceCompleted(run_id=RUN, source="loki",
                                                      outcome="timed_out", attempts=3,
                                                      duration_ms=30000)],
     cmd(CompleteCorrelationSource, run_id=RUN, source="loki", outcome="succeeded", attempts=1,
         duration_ms=31000), []),
    ("a finding", [OPENED, RUN_STARTED],
     cmd(RecordFinding, run_id=RUN, finding_id=FINDING, source="prometheus", kind="errors",
         summary="5xx at 12%", confidence=0.8, evidence={"query": "sum(rate(x[5m]))"},
         service="payments", signal="errors"),
     [FindingRecorded(run_id=RUN, finding_id=FINDING, source="prometheus", kind="errors",
                      summary="5xx at 12%", confidence=0.8,
                      evidence={"query": "sum(rate(x[5m]))"}, service="payments", signal="errors")]),
    ("a finding after resolution changes no status",
     [OPENED, RUN_STARTED, moved(Status.OPEN, Status.RESOLVED, "rolled back")],
     cmd(RecordFinding, run_id=RUN, finding_id=FINDING, source="loki", kind="pattern",
         summary="timeouts", confidence=0.5, service="checkout", signal="log_errors"),
     [FindingRecorded(run_id=RUN, finding_id=FINDING, source="loki", kind="pattern",
                      summary="timeouts", confidence=0.5, after_resolution=True, service="checkout",
                      signal="log_errors")]),
    ("a finding of an unknown run", [OPENED],
     cmd(RecordFinding, run_id=RUN, finding_id=FINDING, source="loki", kind="k", summary="s",
         confidence=0.1, service="checkout", signal="k"), ("validation_error", "run_id")),
    ("the run completes", [OPENED, RUN_STARTED],
     cmd(CompleteCorrelation, run_id=RUN, outcome="partial", hypotheses=[HYPOTHESIS]),
     [CorrelationCompleted(run_id=RUN, outcome="partial", hypotheses=[HYPOTHESIS])]),
    ("the run completes only once",
     [OPENED, RUN_STARTED, CorrelationCompleted(run_id=RUN, outcome="failed")],
     cmd(CompleteCorrelation, run_id=RUN, outcome="succeeded"), []),
    # impact
    ("impact assessed", [OPENED],
     cmd(AssessImpact, slo="availability", burn_rate=14.4, error_budget_left=0.62,
         estimated_cost=120.0, window="1h"),
     [ImpactAssessed(slo="availability", burn_rate=14.4, error_budget_left=0.62,
                     estimated_cost=120.0, window="1h")]),
    # root cause
    ("confirm a root cause", [OPENED],
     cmd(ConfirmRootCause, service="db", signal="latency", note="pool exhausted"),
     [RootCauseConfirmed(service="db", signal="latency", note="pool exhausted", by="alice")]),
    ("confirm a root cause without a signal", HISTORY[Status.INVESTIGATING],
     cmd(ConfirmRootCause, service="db"), [RootCauseConfirmed(service="db", by="alice")]),
    ("confirm a root cause after resolution", HISTORY[Status.RESOLVED],
     cmd(ConfirmRootCause, service="db", signal="latency"),
     [RootCauseConfirmed(service="db", signal="latency", by="alice")]),
    ("the same cause again, by someone else, is a no-op", [OPENED, DB_LATENCY],
     cmd(ConfirmRootCause, service="db", signal="latency"), []),
    ("another service supersedes", [OPENED, DB_LATENCY],
     cmd(ConfirmRootCause, service="payments", signal="errors"),
     [RootCauseConfirmed(service="payments", signal="errors", by="alice", supersedes="db")]),
    ("the same service with another signal supersedes", [OPENED, DB_LATENCY],
     cmd(ConfirmRootCause, service="db", signal="saturation"),
     [RootCauseConfirmed(service="db", signal="saturation", by="alice", supersedes="db")]),
    ("the same cause with a note is a new confirmation", [OPENED, DB_LATENCY],
     cmd(ConfirmRootCause, service="db", signal="latency", note="failover took 4 min"),
     [RootCauseConfirmed(service="db", signal="latency", note="failover took 4 min", by="alice",
                         supersedes="db")]),
    ("a blank service", [OPENED], cmd(ConfirmRootCause, service="  "), ("validation_error", "service")),
    ("a blank signal", [OPENED], cmd(ConfirmRootCause, service="db", signal=" "),
     ("validation_error", "signal")),
    ("confirming checks expected_version", [OPENED, FIRING_A],
     cmd(ConfirmRootCause, service="db", expected_version=1), ("version_conflict", "expected_version")),
    ("impact must be finite", [OPENED],
     cmd(AssessImpact, slo="availability", burn_rate=float("inf"), error_budget_left=0.1),
     ("validation_error", "burn_rate")),
]


@pytest.mark.parametrize(("history", "command", "then"),
                         [pytest.param(h, c, t, id=name) for name, h, c, t in CASES])
def test_given_when_then(history: list[EventData], command: CommandBase, then) -> None:
    state = state_after(history)
    if isinstance(then, tuple):
        code, field = then
        with pytest.raises(Rejected) as refused:
            decide(command, state)
        assert (refused.value.code, refused.value.field) == (code, field)
    else:
        assert decide(command, state) == then


# --- the shell around decide: numbering, actors, duplicates ------------------------------


def run_commands(*commands: CommandBase):
    state, log = initial_state, []
    for command in commands:
        decision = execute(command, state, recorded_at=command.issued_at)
        state, log = decision.state, log + decision.events
    return state, log


def test_events_are_numbered_without_gaps_and_chained() -> None:
    state, log = run_commands(
        cmd(OpenIncident, title="t", service="s", severity="low"),
        cmd(AttachAlert, fingerprint="a", starts_at=T0),
        cmd(StartCorrelation, run_id=RUN, sources=["prometheus"]),
        cmd(ResolveAlert, fingerprint="a", ends_at=T0),
        cmd(ChangeStatus, to="resolved"),
    )
    assert [e.version for e in log] == list(range(1, 8))
    assert verify(log).valid and verify(log).events == 7
    assert state.version == 7 and state.last_hash == log[-1].hash
    assert state.status is Status.RESOLVED


def test_automatic_status_changes_are_the_systems() -> None:
    _, log = run_commands(
        cmd(OpenIncident, title="t", service="s", severity="low"),
        cmd(StartCorrelation, run_id=RUN, sources=["prometheus"]),
    )
    assert [(e.type, e.actor) for e in log] == [
        ("IncidentOpened", ALICE), ("CorrelationStarted", ALICE), ("StatusChanged", SYSTEM)]
    assert log[2].causation_id == log[1].causation_id


def test_an_applied_command_is_a_no_op_when_delivered_again() -> None:
    close = cmd(ChangeStatus, to="resolved", reason="fixed")
    state, _ = run_commands(cmd(OpenIncident, title="t", service="s", severity="low"), close)
    reopened = execute(cmd(ChangeStatus, to="investigating", reason="again"), state, T0).state
    # Without remembering `close` it would now resolve the incident a second time.
    assert decide(close, reopened) == []


def test_idempotency_key_of_the_opening_makes_any_repeat_a_no_op() -> None:
    state, _ = run_commands(
        cmd(OpenIncident, title="t", service="s", severity="low", idempotency_key="req-1"))
    assert decide(cmd(ChangeStatus, to="mitigated", idempotency_key="req-1"), state) == []


def test_redeciding_on_the_same_state_gives_byte_identical_events() -> None:
    state, _ = run_commands(cmd(OpenIncident, title="t", service="s", severity="low"))
    command = cmd(StartCorrelation, run_id=RUN, sources=["loki"])
    first = execute(command, state, recorded_at=T0 + timedelta(seconds=1)).events
    again = execute(command, state, recorded_at=T0 + timedelta(seconds=1)).events
    assert [e.model_dump_json(by_alias=True) for e in first] == [
        e.model_dump_json(by_alias=True) for e in again]


def test_fold_skips_exact_repeats_and_time_travels() -> None:
    commands = [cmd(OpenIncident, title="t", service="s", severity="low", issued_at=T0)]
    commands += [cmd(ChangeStatus, to=to, issued_at=T0 + timedelta(minutes=i + 1))
                 for i, to in enumerate(["investigating", "mitigated", "resolved"])]
    state, log = run_commands(*commands)
    assert fold(log + log[1:3]) == state
    assert state_as_of(log, T0 + timedelta(minutes=2, seconds=30)).status is Status.MITIGATED
    assert state_as_of(log, T0 - timedelta(seconds=1)) is None


def test_record_derives_ids_from_the_command() -> None:
    command = cmd(OpenIncident, title="t", service="s", severity="low")
    [event] = record(command, None, decide(command, None), recorded_at=T0)
    assert event.event_id == uuid5(command.command_id, "0")
    assert event.causation_id == event.correlation_id == command.command_id
    assert (event.occurred_at, event.recorded_at) == (T0, T0)


# --- property: deciding the same command again on the new state yields nothing -----------

FINGERPRINTS = st.sampled_from(["a", "b", "c"])
RUNS = st.sampled_from([RUN, OTHER_RUN])
SOURCES = st.sampled_from(["prometheus", "loki"])
REASONS = st.one_of(st.none(), st.just("because"))


def _command(command_type: type[CommandBase], /, **fields):
    return st.builds(lambda **f: cmd(command_type, **f), **fields)


COMMANDS = st.one_of(
    _command(OpenIncident, title=st.just("t"), service=st.just("s"),
             severity=st.sampled_from(list(Severity))),
    _command(AcknowledgeIncident),
    _command(ChangeStatus, to=st.sampled_from(list(Status)), reason=REASONS),
    _command(ChangeSeverity, severity=st.sampled_from(list(Severity))),
    _command(AddNote, note_id=st.uuids(), text=st.just("n")),
    _command(AttachAlert, fingerprint=FINGERPRINTS, starts_at=st.just(T0)),
    _command(ResolveAlert, fingerprint=FINGERPRINTS, ends_at=st.just(T0),
             mitigate_when_last=st.booleans()),
    _command(StartCorrelation, run_id=RUNS, sources=st.just(["prometheus", "loki"])),
    _command(StartCorrelationSource, run_id=RUNS, source=SOURCES),
    _command(CompleteCorrelationSource, run_id=RUNS, source=SOURCES,
             outcome=st.sampled_from(["succeeded", "failed", "no_data"]),
             attempts=st.integers(0, 3), duration_ms=st.integers(0, 100)),
    _command(RecordFinding, run_id=RUNS, finding_id=st.uuids(), source=SOURCES,
             kind=st.just("k"), summary=st.just("s"), confidence=st.floats(0, 1),
             service=st.sampled_from(["s", "db"]), signal=st.just("k")),
    _command(CompleteCorrelation, run_id=RUNS, outcome=st.sampled_from(["succeeded", "failed"])),
    _command(ConfirmRootCause, service=st.sampled_from(["db", "payments"]),
             signal=st.sampled_from([None, "latency"]), note=st.sampled_from([None, "pool"])),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(COMMANDS, max_size=40))
def test_deciding_again_on_the_evolved_state_yields_nothing(commands: list[CommandBase]) -> None:
    state, log = initial_state, []
    opening = cmd(OpenIncident, title="t", service="s", severity="low")
    for command in [opening, *commands]:
        try:
            decision = execute(command, state, recorded_at=T0)
        except Rejected:
            continue
        assert decide(command, decision.state) == []
        if isinstance(command, ConfirmRootCause):
            # The same cause confirmed again by anyone, not only this command redelivered.
            again = command.model_copy(update={"command_id": uuid5(command.command_id, "again")})
            assert decide(again, decision.state) == []
        state, log = decision.state, log + decision.events
    assert [e.version for e in log] == list(range(1, len(log) + 1))
    assert verify(log).valid
    assert fold(log) == state
