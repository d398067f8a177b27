"""Alert intake (SPEC §5), pure: what an alert, or a change of an incident, means for
the group of alerts it belongs to. What the alert itself says (its fingerprint, group,
title…) and the notices are read in `streams.alert_reading`.

Alerts are grouped by the values of configured labels (`intake.group_by`, default the
service). A group remembers one incident at a time (`Group`); `react(notice, group)`
answers with the commands to send and the group afterwards:

- a firing alert attaches to the group's unresolved incident, or opens one;
- a resolved alert resolves it in the incident it was attached to;
- an incident that resolves is let go (the next firing alert opens a new one), one that
  reopens is taken back, and one opened by someone else for the group is adopted.

No I/O, no clock, no random ids: incident and command ids are uuid5 of what the notice
and the group hold, so a redelivered notice produces the very same commands, which the
decider then finds already applied.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from uuid import UUID, uuid5

from contracts.alerts import Alert
from contracts.commands import AttachAlert, CommandBase, OpenIncident, ResolveAlert
from contracts.common import Actor, ActorKind
from foundation.settings import IntakeSettings
from streams.alert_reading import (
    ALERTNAME,
    AlertNotice,
    IncidentChange,
    IncidentNotice,
    description_of,
    group_key,
    service_of,
    severity_of,
    title_of,
)

NAMESPACE = UUID("3b6f2f5e-8d1c-5a4e-9f0b-6c2d7e1a9b40")
"""Namespace of every id the intake derives."""

INTAKE_ACTOR_ID = "intake"


# --- the group and how it reacts ---------------------------------------------------


@dataclass(frozen=True, slots=True)
class Group:
    """What one group of alerts remembers.

    `incident_id` is the group's incident (None before the first), `resolved` whether it
    is resolved. `firing` holds the fingerprints the intake attached to it and has not
    resolved since. `attached` numbers the attaches sent to it that append an
    `AlertAttached` unless the incident refuses them (it was resolved meanwhile).
    `incident_version` is the version of the last incident notice applied (older ones
    are repeats).
    """

    incident_id: UUID | None = None
    resolved: bool = False
    firing: frozenset[str] = frozenset()
    attached: int = 0
    incident_version: int = 0

    @property
    def unresolved_incident(self) -> UUID | None:
        return self.incident_id if not self.resolved else None


@dataclass(frozen=True, slots=True)
class Reaction:
    """The commands a notice causes, in the order to send them, and the group after it.

    `refused` numbers attaches that the group's incident refused because it had been
    resolved before they arrived; their alerts must be routed again (they now open or
    join the group's next incident).
    """

    commands: tuple[CommandBase, ...]
    group: Group
    refused: range = field(default=range(0))


def react(notice: AlertNotice | IncidentNotice, group: Group, intake: IntakeSettings) -> Reaction:
    """What `notice` causes for `group`; deterministic in its arguments."""
    if isinstance(notice, AlertNotice):
        if notice.alert.status == "firing":
            return _firing(notice, group, intake)
        return _resolved(notice, group, intake)
    return _incident_changed(notice, group)


def incident_id_for(notice: AlertNotice, previous: UUID | None) -> UUID:
    """The id of the incident `notice` opens after the group's `previous` one: the same
    alert redelivered names the same incident; after a resolution, a new one."""
    started = notice.alert.starts_at.isoformat()
    return uuid5(NAMESPACE, f"{notice.group_key}|{previous or ''}|{notice.fingerprint}|{started}")


def producer_of(alert: Alert) -> Actor:
    return Actor(kind=ActorKind.PRODUCER, id=alert.source or INTAKE_ACTOR_ID)


def _firing(notice: AlertNotice, group: Group, intake: IntakeSettings) -> Reaction:
    alert, fp = notice.alert, notice.fingerprint
    incident = group.unresolved_incident
    commands: list[CommandBase] = []
    if incident is None:
        incident = incident_id_for(notice, group.incident_id)
        commands.append(OpenIncident(
            command_id=uuid5(NAMESPACE, f"{incident}|open"),
            incident_id=incident,
            actor=producer_of(alert),
            issued_at=notice.received_at,
            title=title_of(alert),
            service=service_of(alert.labels, intake),
            severity=severity_of(alert.labels, intake),
            description=description_of(alert),
            labels=dict(alert.labels),
        ))
        group = Group(incident_id=incident)
    elif fp in group.firing:
        return Reaction((), group)  # the same alert firing again attaches nothing new
    commands.append(AttachAlert(
        # Numbered per incident: unique even when an alert fires again with the same start.
        command_id=uuid5(NAMESPACE, f"{incident}|attach|{group.attached}|{fp}"),
        incident_id=incident,
        actor=producer_of(alert),
        issued_at=notice.received_at,
        fingerprint=fp,
        alertname=alert.labels.get(ALERTNAME),
        labels=dict(alert.labels),
        annotations=dict(alert.annotations),
        starts_at=alert.starts_at,
        source=alert.source,
    ))
    after = replace(group, firing=group.firing | {fp}, attached=group.attached + 1)
    return Reaction(tuple(commands), after)


def _resolved(notice: AlertNotice, group: Group, intake: IntakeSettings) -> Reaction:
    fp = notice.fingerprint
    if group.incident_id is None or fp not in group.firing:
        return Reaction((), group)  # not an alert of the group's incident: nothing to resolve
    command = ResolveAlert(
        command_id=uuid5(NAMESPACE, f"{group.incident_id}|resolve|{group.attached}|{fp}"),
        incident_id=group.incident_id,
        actor=producer_of(notice.alert),
        issued_at=notice.received_at,
        fingerprint=fp,
        ends_at=notice.alert.ends_at or notice.received_at,
        mitigate_when_last=intake.mitigate_when_last_resolved,
    )
    return Reaction((command,), replace(group, firing=group.firing - {fp}))


def _incident_changed(notice: IncidentNotice, group: Group) -> Reaction:
    same = group.incident_id == notice.incident_id
    if same and notice.version <= group.incident_version:
        return Reaction((), group)  # a repeat of a change already applied
    free = group.incident_id is None or group.resolved
    if notice.change == "resolved":
        if not same:
            return Reaction((), group)
        # Attaches numbered from the incident's own count on reached it after it resolved.
        refused = range(notice.attached, max(group.attached, notice.attached))
        after = replace(group, resolved=True, attached=notice.attached, incident_version=notice.version)
        return Reaction((), after, refused)
    if same:  # opened (our own: our attaches may be ahead of its count) or reopened
        return Reaction((), replace(group, resolved=False, attached=max(group.attached, notice.attached),
                                    incident_version=notice.version))
    if free:  # an incident opened (or reopened) for the group while it has none unresolved
        return Reaction((), Group(incident_id=notice.incident_id, attached=notice.attached,
                                  incident_version=notice.version))
    return Reaction((), group)  # the group keeps the unresolved incident it has


# --- watching incidents: which of their events a group must hear about -------------


@dataclass(frozen=True, slots=True)
class Watched:
    """What the intake remembers of one incident: its group, the version of the last
    event that mattered (older ones are repeats) and how many alerts it attached."""

    group_key: str
    version: int
    attached: int = 0


def watch(watched: Watched | None, event: Mapping, intake: IntakeSettings
          ) -> tuple[Watched | None, IncidentNotice | None]:
    """Fold one event of the log (its JSON envelope, decoded) into what is watched of its
    incident, and say which notice, if any, its group must get.

    Notices: `opened` for IncidentOpened, `resolved` for a move to resolved, `reopened`
    for a move away from resolved. AlertAttached only counts. Anything else, and any
    event at or below the version already seen, changes nothing.
    """
    kind, version, data = event.get("type"), event.get("version"), event.get("data") or {}
    if kind not in _WATCHED or not isinstance(version, int):
        return watched, None
    if watched is not None and version <= watched.version:
        return watched, None
    if kind == "IncidentOpened":
        if watched is not None:
            return watched, None
        labels = {**(data.get("labels") or {}), intake.service_label: data.get("service") or ""}
        watched = Watched(group_key=group_key(labels, intake), version=version)
        return watched, _notice(watched, event, "opened")
    if watched is None:
        return None, None  # an incident opened before anything was watched
    if kind == "AlertAttached":
        return replace(watched, version=version, attached=watched.attached + 1), None
    watched = replace(watched, version=version)
    if data.get("to") == "resolved":
        return watched, _notice(watched, event, "resolved")
    if data.get("from") == "resolved":
        return watched, _notice(watched, event, "reopened")
    return watched, None


_WATCHED = frozenset({"IncidentOpened", "AlertAttached", "StatusChanged"})


def _notice(watched: Watched, event: Mapping, change: IncidentChange) -> IncidentNotice:
    return IncidentNotice(group_key=watched.group_key, incident_id=event["incident_id"],
                          change=change, version=watched.version, attached=watched.attached)


# --- the intake with its short memory ----------------------------------------------


@dataclass(frozen=True, slots=True)
class Handled:
    """What handling one notice produced: commands in sending order, the group after them,
    and the numbers of refused attaches whose alert was no longer remembered."""

    commands: list[CommandBase]
    group: Group
    lost: list[int]


class Intake:
    """`react`, plus a bounded memory of the alerts recently attached, so the alerts an
    incident refused (it resolved while they were on their way) are routed again rather
    than dropped. The memory is per process and not persisted: after a restart the
    alerts refused just before it are reported `lost` instead (a producer that re-sends
    firing alerts, as Alertmanager does, delivers them again)."""

    def __init__(self, settings: IntakeSettings, remember: int = 50_000) -> None:
        self.settings = settings
        self._limit = remember
        self._recent: dict[tuple[str, UUID, int], AlertNotice] = {}

    def handle(self, notice: AlertNotice | IncidentNotice, group: Group) -> Handled:
        """React to `notice` on `group`, routing refused alerts again."""
        reaction = self._react(notice, group)
        commands, group, lost = list(reaction.commands), reaction.group, []
        refused_by = group.incident_id
        for number in reaction.refused:
            again = self._recent.pop((notice.group_key, refused_by, number), None)
            if again is None:
                lost.append(number)
                continue
            rerouted = self._react(again, group)
            commands.extend(rerouted.commands)
            group = rerouted.group
        return Handled(commands, group, lost)

    def _react(self, notice: AlertNotice | IncidentNotice, group: Group) -> Reaction:
        reaction = react(notice, group, self.settings)
        for command in reaction.commands:
            if isinstance(command, AttachAlert) and isinstance(notice, AlertNotice):
                number = reaction.group.attached - 1
                self._remember((notice.group_key, command.incident_id, number), notice)
        return reaction

    def _remember(self, key: tuple[str, UUID, int], notice: AlertNotice) -> None:
        self._recent[key] = notice
        if len(self._recent) > self._limit:
            del self._recent[next(iter(self._recent))]  # the oldest: dicts keep insertion order
