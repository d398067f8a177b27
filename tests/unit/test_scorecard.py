"""The scorecard fold: which run counts, the confirmed service's rank in it, and how soon a
run first named it. Pure; milliseconds."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import UUID, uuid5

import pytest

from contracts.common import SYSTEM, Actor
from contracts.events import CorrelationCompleted, EventData, EventEnvelope, IncidentOpened, NoteAdded, RootCauseConfirmed
from contracts.hypotheses import Hypothesis
from projections import scorecard
from foundation.chain import seal

INCIDENT = UUID("00000000-0000-4000-8000-000000000001")
T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
ALICE = Actor(kind="user", id="alice")


def run_id(n: int) -> UUID:
    return uuid5(INCIDENT, f"run-{n}")


def typed(*services: str) -> list[Hypothesis]:
    return [Hypothesis(rank=n, service=s, signal="latency", confidence=0.9, path=[s, "checkout"])
            for n, s in enumerate(services, 1)]


def completed(n: int, hypotheses: list) -> CorrelationCompleted:
    # The event model of this version holds dicts; typed ones go in as their JSON form.
    return CorrelationCompleted(run_id=run_id(n), outcome="succeeded", hypotheses=[
        h.model_dump(mode="json") if isinstance(h, Hypothesis) else h for h in hypotheses])


def confirmed(service: str, by: str = "alice", signal: str | None = None) -> RootCauseConfirmed:
    return RootCauseConfirmed(service=service, signal=signal, by=by)


def log(*steps: tuple[float, EventData]) -> list[EventEnvelope]:
    """The incident opened at T0, then each (minutes after T0, fact)."""
    events, prev = [], "0" * 64
    facts = [(0.0, IncidentOpened(title="t", service="checkout", severity="high")), *steps]
    for version, (minutes, fact) in enumerate(facts, 1):
        at = T0 + timedelta(minutes=minutes)
        event = seal(event_id=uuid5(INCIDENT, str(version)), incident_id=INCIDENT, version=version, data=fact,
                     occurred_at=at, recorded_at=at, causation_id=uuid5(INCIDENT, f"c{version}"),
                     correlation_id=INCIDENT, actor=ALICE if isinstance(fact, RootCauseConfirmed) else SYSTEM,
                     prev_hash=prev)
        events.append(event)
        prev = event.hash
    return events


def fold(events: list[EventEnvelope]) -> scorecard.Row | None:
    row = None
    for event in events:
        row = scorecard.evolve(row, event, T0)
    return row


def scores(row: scorecard.Row) -> tuple:
    return (row["run_id"], row["rank"], row["top1"], row["top3"], row["first_named_run_id"],
            row["time_to_first_hypothesis_s"])


# --- which services a run names --------------------------------------------------------------

def test_suspects_are_distinct_services_best_ranked_first() -> None:
    hypotheses = [{"rank": 2, "service": "payments"}, {"rank": 1, "service": "db"},
                  {"rank": 3, "service": "db"}, {"rank": 4, "service": "cache"}]
    assert scorecard.suspects(hypotheses) == ["db", "payments", "cache"]
    assert scorecard.suspects(typed("db", "payments")) == ["db", "payments"]


def test_old_free_form_hypotheses_name_no_service() -> None:
    old = [{"rank": 1, "summary": "An error spike", "confidence": 0.95, "category": "errors", "finding_ids": []},
           {"title": "bad deploy"}, {"service": ""}, {"service": 7}]
    assert scorecard.suspects(old) == []


def test_without_a_usable_rank_list_order_decides() -> None:
    assert scorecard.suspects([{"service": "b"}, {"rank": "1", "service": "a"}, {"rank": 1, "service": "c"}]) == \
        ["c", "b", "a"]


# --- which run counts -------------------------------------------------------------------------

CASES = [
    ("top-1 of the only run",
     [(2, completed(1, typed("db", "payments"))), (9, confirmed("db"))],
     (run_id(1), 1, True, True, run_id(1), 120.0)),
    ("third of the run: top-3, not top-1",
     [(2, completed(1, typed("cache", "payments", "db", "queue"))), (9, confirmed("db"))],
     (run_id(1), 3, False, True, run_id(1), 120.0)),
    ("fourth: neither",
     [(2, completed(1, typed("cache", "payments", "queue", "db"))), (9, confirmed("db"))],
     (run_id(1), 4, False, False, run_id(1), 120.0)),
    ("the latest run before the confirmation counts, the first naming one gives the time",
     [(2, completed(1, typed("db"))), (5, completed(2, typed("payments", "db"))), (9, confirmed("db"))],
     (run_id(2), 2, False, True, run_id(1), 120.0)),
    ("a run completed after the confirmation does not count, but can name it first",
     [(2, completed(1, typed("payments"))), (9, confirmed("db")), (12, completed(2, typed("db")))],
     (run_id(1), None, False, False, run_id(2), 720.0)),
    ("confirmed before any run completed: a miss",
     [(1, confirmed("db"))],
     (None, None, False, False, None, None)),
    ("old-shape hypotheses never match",
     [(2, completed(1, [{"rank": 1, "summary": "db latency", "confidence": 0.9}])), (9, confirmed("db"))],
     (run_id(1), None, False, False, None, None)),
    ("a superseding confirmation is scored against the runs before it",
     [(2, completed(1, typed("payments", "db"))), (4, confirmed("payments")),
      (6, completed(2, typed("db"))), (9, confirmed("db", by="bob"))],
     (run_id(2), 1, True, True, run_id(1), 120.0)),
]


@pytest.mark.parametrize(("steps", "then"), [pytest.param(s, t, id=name) for name, s, t in CASES])
def test_which_run_counts(steps, then) -> None:
    row = fold(log(*steps))
    assert row is not None and scores(row) == then


def test_the_row_holds_the_cause_and_every_run_in_log_order() -> None:
    events = log((2, completed(1, typed("db"))), (3, NoteAdded(note_id=INCIDENT, text="x", author="a")),
                 (5, completed(2, [])), (9, RootCauseConfirmed(service="db", signal="latency", note="pool", by="bob")))
    row = fold(events)
    assert row is not None
    assert (row["service"], row["signal"], row["note"], row["confirmed_by"], row["confirmed_version"]) == \
        ("db", "latency", "pool", "bob", 5)
    assert row["confirmed_at"] == T0 + timedelta(minutes=9) and row["opened_at"] == T0
    assert [(r["run_id"], r["version"], r["suspects"]) for r in row["runs"]] == \
        [(str(run_id(1)), 2, ["db"]), (str(run_id(2)), 4, [])]
    assert row["first_named_at"] == T0 + timedelta(minutes=2)


def test_runs_alone_make_an_unscored_row_and_other_events_none() -> None:
    assert fold(log((3, NoteAdded(note_id=INCIDENT, text="x", author="a")))) is None
    row = fold(log((2, completed(1, typed("db")))))
    assert row is not None and row["service"] is None
    assert scores(row) == (None, None, None, None, None, None)


def test_the_fold_does_not_modify_the_row_it_is_given() -> None:
    events = log((2, completed(1, typed("db"))), (9, confirmed("db")))
    before = fold(events[:2])
    assert before is not None
    snapshot = {**before, "runs": list(before["runs"])}
    scorecard.evolve(before, events[2], T0)
    assert before == snapshot
