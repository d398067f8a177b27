"""Who is owed a page, and when: pure routing and escalation (SPEC §15).

The notifier folds each incident's events into a `Pager` (`evolve`) and asks `due` what
to do at a moment: deliver a page (again), or record an escalation. Everything here is
derived from the log: deadlines are the trigger event's `occurred_at` plus the route's
delay, retry times the failed attempt's `occurred_at` plus a backoff whose jitter is a
hash of the page, so a restarted notifier that reads the same log owes the same pages
at the same moments. What became owed longer ago than `notify.max_age_s` is no longer
due (`expired`). No clock, no randomness, no I/O.
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta
from typing import Literal
from uuid import UUID, uuid5

from pydantic import BaseModel, ConfigDict

from contracts.common import Severity, Status
from contracts.events import (
    AlertAttached,
    Escalated,
    EventEnvelope,
    IncidentAcknowledged,
    IncidentOpened,
    NotificationFailed,
    NotificationSent,
    SeverityChanged,
    StatusChanged,
)
from foundation.settings import NotifySettings, Route

NOTIFICATION_NAMESPACE = UUID("6f1c2f0e-5a8b-4c39-9a37-3f2d1b7e9c41")
SEVERITY_RANK = {Severity.LOW: 0, Severity.MEDIUM: 1, Severity.HIGH: 2, Severity.CRITICAL: 3}
Trigger = Literal["opened", "reopened", "severity_raised", "alert", "escalation"]


class Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


def notification_id(incident_id: UUID, trigger_event_id: UUID, receiver: str, level: int) -> UUID:
    """The id of one page, the same on every attempt and after every restart: it is the
    receiver's `Idempotency-Key`."""
    return uuid5(NOTIFICATION_NAMESPACE, f"{incident_id}/{trigger_event_id}/{receiver}/{level}")


def attempt_command_id(notification: UUID, attempt: int) -> UUID:
    """The command id recording `attempt` of a page: a resend after a restart is the same command."""
    return uuid5(NOTIFICATION_NAMESPACE, f"attempt/{notification}/{attempt}")


def escalation_command_id(incident_id: UUID, trigger_event_id: UUID, level: int, receivers: tuple[str, ...]) -> UUID:
    return uuid5(NOTIFICATION_NAMESPACE, f"escalate/{incident_id}/{trigger_event_id}/{level}/{','.join(receivers)}")


class Page(Frozen):
    """One page owed to one receiver: delivered once `sent`, or given up once `failed`."""

    notification_id: UUID
    receiver: str
    level: int
    trigger: Trigger
    trigger_event_id: UUID
    owed_at: datetime
    attempts: int = 0  # attempts recorded on the log
    retry_at: datetime | None = None
    done: bool = False


class Chain(Frozen):
    """An escalation chain: started by a trigger, it runs until someone acknowledges."""

    trigger_event_id: UUID
    started_at: datetime
    escalated: frozenset[str] = frozenset()  # "<level>:<receivers>" already on the log


class Pager(Frozen):
    """What the notifier knows about one incident."""

    incident_id: UUID
    title: str
    service: str
    severity: Severity
    status: Status
    labels: dict[str, str] = {}
    version: int = 0
    acknowledged: bool = False
    alerts: int = 0
    chain: Chain | None = None
    pages: tuple[Page, ...] = ()

    @property
    def quiet(self) -> bool:
        """Acknowledged or resolved: no escalation runs."""
        return self.acknowledged or self.status is Status.RESOLVED


class Deliver(Frozen):
    page: Page
    attempt: int


class Escalate(Frozen):
    level: int
    receivers: tuple[str, ...]
    trigger_event_id: UUID


Action = Deliver | Escalate


def matches(route: Route, service: str, severity: Severity, labels: dict[str, str]) -> bool:
    """True when the route applies: its services, severities and every one of its labels."""
    if route.services and service not in route.services:
        return False
    if route.severities and severity.value not in route.severities:
        return False
    return all(labels.get(k) == v for k, v in route.labels.items())


def routes_for(pager: Pager, settings: NotifySettings) -> list[Route]:
    return [r for r in settings.routes if matches(r, pager.service, pager.severity, pager.labels)]


def evolve(pager: Pager | None, event: EventEnvelope, settings: NotifySettings) -> Pager | None:
    """The pager after `event`; an event at or below the pager's version is already in it."""
    data = event.data
    if pager is None:
        if not isinstance(data, IncidentOpened):
            return None  # an incident from before paging was set up, or a partial log: nothing owed
        pager = Pager(incident_id=event.incident_id, title=data.title, service=data.service,
                      severity=data.severity, status=Status.OPEN, labels=dict(data.labels),
                      version=event.version)
        return _trigger(pager, event, "opened", settings, on_alert_only=False, chain=True)
    if event.version <= pager.version:
        return pager
    pager = pager.model_copy(update={"version": event.version})
    match data:
        case IncidentAcknowledged():
            return pager.model_copy(update={"acknowledged": True})
        case StatusChanged():
            reopened = data.from_ is Status.RESOLVED and data.to is not Status.RESOLVED
            pager = pager.model_copy(update={"status": data.to})
            if reopened:
                pager = pager.model_copy(update={"acknowledged": False})
                return _trigger(pager, event, "reopened", settings, on_alert_only=False, chain=True)
            return pager
        case SeverityChanged():
            raised = SEVERITY_RANK[data.to] > SEVERITY_RANK[data.from_]
            pager = pager.model_copy(update={"severity": data.to})
            if raised and pager.status is not Status.RESOLVED:
                return _trigger(pager, event, "severity_raised", settings, on_alert_only=False, chain=False)
            return pager
        case AlertAttached():
            pager = pager.model_copy(update={"alerts": pager.alerts + 1})
            if pager.alerts > 1 and pager.status is not Status.RESOLVED:  # the first alert is the opening page
                return _trigger(pager, event, "alert", settings, on_alert_only=True, chain=False)
            return pager
        case Escalated():
            return _escalated(pager, event, data)
        case NotificationSent():
            return _with_page(pager, data.notification_id,
                              lambda p: {"attempts": max(p.attempts, data.attempt), "done": True})
        case NotificationFailed():
            return _with_page(pager, data.notification_id, lambda p: {
                "attempts": max(p.attempts, data.attempt),
                "done": not data.will_retry,
                "retry_at": event.occurred_at + backoff(p.notification_id, data.attempt, settings),
            })
    return pager


def due(pager: Pager, now: datetime, settings: NotifySettings) -> list[Action]:
    """What is owed at `now`: pages to (re)send, escalation levels whose delay passed.
    What became owed more than `max_age_s` before `now` is not (see `expired`)."""
    cutoff = now - timedelta(seconds=settings.max_age_s)
    return [action for since, at, action in _pending(pager, settings)
            if since >= cutoff and (at is None or at <= now)]


def expired(pager: Pager, now: datetime, settings: NotifySettings) -> list[Action]:
    """What was owed but is now too old to send: owed since more than `max_age_s` before
    `now`, e.g. an incident that opened before paging was set up, or while no notifier
    ran. A page that late would wake someone for what is long over; nothing is recorded
    for it, so the log says it was never sent, and the notifier logs how many."""
    cutoff = now - timedelta(seconds=settings.max_age_s)
    return [action for since, _, action in _pending(pager, settings) if since < cutoff]


def settled(pager: Pager, now: datetime, settings: NotifySettings) -> bool:
    """Nothing is owed at `now` or later unless a new event comes: every page delivered,
    given up or expired, every escalation taken, stopped or expired. Expiry only grows
    with `now`, so a settled pager needs looking at again only after its next event."""
    cutoff = now - timedelta(seconds=settings.max_age_s)
    return all(since < cutoff for since, _, _ in _pending(pager, settings))


def next_due(pager: Pager, settings: NotifySettings) -> datetime | None:
    """The earliest moment something will be owed (for sleeping until then), or None."""
    return min((at for _, at, _ in _pending(pager, settings) if at is not None), default=None)


def _pending(pager: Pager, settings: NotifySettings) -> list[tuple[datetime, datetime | None, Action]]:
    # Each action not done yet: the moment it became (or will become) owed, which the age
    # limit counts from, and when it is due (None: at once). For a page that is its trigger
    # or its retry time, for an escalation its deadline; so a retry or an escalation of a
    # live notifier is never too old, whatever the incident's age.
    actions: list[tuple[datetime, datetime | None, Action]] = []
    for page in pager.pages:
        if not page.done:
            actions.append((page.retry_at or page.owed_at, page.retry_at,
                            Deliver(page=page, attempt=page.attempts + 1)))
    if pager.chain is not None and not pager.quiet:
        chain = pager.chain
        for route in routes_for(pager, settings):
            for level, step in enumerate(route.escalate, start=1):
                receivers = tuple(step.receivers)
                if _step(level, receivers) not in chain.escalated:
                    deadline = chain.started_at + timedelta(seconds=step.after_s)
                    actions.append((deadline, deadline, Escalate(level=level, receivers=receivers,
                                                                 trigger_event_id=chain.trigger_event_id)))
    return actions


def will_retry(attempt: int, settings: NotifySettings) -> bool:
    """Whether a failed `attempt` (1 = the first) is tried again."""
    return attempt <= settings.retries


def backoff(notification: UUID, attempt: int, settings: NotifySettings) -> timedelta:
    """Delay before the attempt after `attempt`: doubling from `backoff_s`, capped, with
    0-50 % jitter derived from the page so that every reader of the log agrees on it."""
    base = min(settings.backoff_s * 2 ** (attempt - 1), settings.max_backoff_s)
    digest = hashlib.sha256(f"{notification}/{attempt}".encode()).digest()
    jitter = int.from_bytes(digest[:4], "big") / 2**32 * 0.5
    return timedelta(seconds=base * (1 + jitter))


def _step(level: int, receivers: tuple[str, ...]) -> str:
    return f"{level}:{','.join(receivers)}"


def _trigger(pager: Pager, event: EventEnvelope, trigger: Trigger, settings: NotifySettings, *,
             on_alert_only: bool, chain: bool) -> Pager:
    receivers: list[str] = []
    for route in routes_for(pager, settings):
        if on_alert_only and not route.on_alert:
            continue
        receivers += [r for r in route.receivers if r not in receivers]
    pages = tuple(
        Page(notification_id=notification_id(pager.incident_id, event.event_id, r, 0), receiver=r,
             level=0, trigger=trigger, trigger_event_id=event.event_id, owed_at=event.occurred_at)
        for r in receivers
    )
    update: dict[str, object] = {"pages": _keep_open(pager.pages) + pages}
    if chain:
        update["chain"] = Chain(trigger_event_id=event.event_id, started_at=event.occurred_at)
    return pager.model_copy(update=update)


def _escalated(pager: Pager, event: EventEnvelope, data: Escalated) -> Pager:
    receivers = tuple(data.receivers)
    chain = pager.chain
    if chain is not None and chain.trigger_event_id == data.trigger_event_id:
        chain = chain.model_copy(update={"escalated": chain.escalated | {_step(data.level, receivers)}})
    pages = tuple(
        Page(notification_id=notification_id(pager.incident_id, data.trigger_event_id, r, data.level),
             receiver=r, level=data.level, trigger="escalation", trigger_event_id=data.trigger_event_id,
             owed_at=event.occurred_at)
        for r in receivers
    )
    known = {p.notification_id for p in pager.pages}
    return pager.model_copy(update={"chain": chain,
                                    "pages": _keep_open(pager.pages) + tuple(p for p in pages if p.notification_id not in known)})


def _keep_open(pages: tuple[Page, ...]) -> tuple[Page, ...]:
    # Delivered pages are on the log already; the pager only needs what is still owed.
    return tuple(p for p in pages if not p.done)


def _with_page(pager: Pager, notification: UUID, change) -> Pager:
    pages = tuple(p.model_copy(update=change(p)) if p.notification_id == notification else p
                  for p in pager.pages)
    return pager.model_copy(update={"pages": _keep_open(pages)})
