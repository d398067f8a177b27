"""Alert intake (SPEC §5), pure: what an alert, or a change of an incident, means for
the group of alerts it belongs to.

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

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Annotated, Literal
from urllib.parse import urlencode
from uuid import UUID, uuid5

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from contracts.alerts import Alert
from contracts.commands import AttachAlert, CommandBase, OpenIncident, ResolveAlert
from contracts.common import Actor, ActorKind, Severity, UtcDatetime
from foundation.settings import IntakeSettings

NAMESPACE = UUID("3b6f2f5e-8d1c-5a4e-9f0b-6c2d7e1a9b40")
"""Namespace of every id the intake derives."""

UNKNOWN_SERVICE = "unknown"
"""The service of an alert without the service label: such an alert still pages someone."""

ALERTNAME = "alertname"
SUMMARY = "summary"
DESCRIPTION = "description"
FINGERPRINT_CHARS = 32
SERVICE_MAX = 200  # OpenIncident.service
TITLE_MAX = 300  # OpenIncident.title
DESCRIPTION_MAX = 20_000  # OpenIncident.description
INTAKE_ACTOR_ID = "intake"


class Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


# --- what an alert says --------------------------------------------------------------


def canonical_labels(labels: Mapping[str, str]) -> bytes:
    """The labels as canonical JSON: sorted keys, no whitespace, UTF-8."""
    return json.dumps(labels, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def fingerprint(alert: Alert) -> str:
    """The alert's own fingerprint, else the first 32 hex digits of the SHA-256 of its
    canonical labels: the same labels always name the same alert."""
    if alert.fingerprint:
        return alert.fingerprint
    return hashlib.sha256(canonical_labels(alert.labels)).hexdigest()[:FINGERPRINT_CHARS]


def service_of(labels: Mapping[str, str], intake: IntakeSettings) -> str:
    """The value of the service label; `unknown` when it is missing or empty."""
    return labels.get(intake.service_label) or UNKNOWN_SERVICE


def group_key(labels: Mapping[str, str], intake: IntakeSettings) -> str:
    """The group an alert (or an incident, by its labels) belongs to: with one `group_by`
    label its value (by default the service: `checkout`), with several the values in
    configured order, URL-encoded (`service=checkout&env=prod`).

    The service label counts with its `service_of` value, so an incident opened with
    that service, whatever its labels say, lands in the same group. This is also the
    key producers should give an alert record: then it is taken in where it arrives.
    """
    values = [(name, service_of(labels, intake) if name == intake.service_label else labels.get(name, ""))
              for name in intake.group_by]
    return values[0][1] if len(values) == 1 else urlencode(values)


def title_of(alert: Alert) -> str:
    """`alertname: summary`, or whichever of the two exists, else a title naming the labels."""
    name = alert.labels.get(ALERTNAME, "").strip()
    summary = alert.annotations.get(SUMMARY, "").strip()
    if name and summary:
        title = f"{name}: {summary}"
    else:
        title = name or summary or "alert " + ", ".join(f"{k}={v}" for k, v in sorted(alert.labels.items()))
    return _clip(title, TITLE_MAX)


def severity_of(labels: Mapping[str, str], intake: IntakeSettings) -> Severity:
    """The severity label mapped through `severity_map` (case-insensitive), else the default."""
    raw = labels.get(intake.severity_label, "").strip().lower()
    return Severity(intake.severity_map.get(raw, intake.default_severity))


def refusal(alert: Alert, intake: IntakeSettings) -> tuple[str, str] | None:
    """Why `alert` cannot become commands, as `(field, message)`; None when it can.

    Text must be storable (no NUL characters, no unpaired surrogates) and the service
    label no longer than an incident's service may be.
    """
    if not _storable("".join(text for _, text in _texts(alert))):  # one check for the usual case
        for field_name, text in _texts(alert):
            if "\x00" in text:
                return field_name, "must not contain NUL characters"
            if not _storable(text):
                return field_name, "must be valid Unicode (no unpaired surrogates)"
    service = alert.labels.get(intake.service_label)
    if service is not None and len(service) > SERVICE_MAX:
        return f"labels.{intake.service_label}", f"must be at most {SERVICE_MAX} characters"
    return None


def _texts(alert: Alert):
    for kind in ("labels", "annotations"):
        for key, value in getattr(alert, kind).items():
            yield f"{kind}", key
            yield f"{kind}.{key}", value
    for name in ("fingerprint", "source"):
        value = getattr(alert, name)
        if value is not None:
            yield name, value


def _storable(text: str) -> bool:
    if "\x00" in text:
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


# --- notices: what the intake agent reads, keyed by group --------------------------


class AlertNotice(Frozen):
    """An alert routed to its group. `received_at` is the alert record's timestamp, so a
    redelivered alert carries the same one."""

    kind: Literal["alert"] = "alert"
    group_key: str
    fingerprint: str
    received_at: UtcDatetime
    alert: Alert


IncidentChange = Literal["opened", "resolved", "reopened"]


class IncidentNotice(Frozen):
    """A change of an incident that matters to its group, as of the event at `version`.
    `attached` counts the incident's `AlertAttached` events up to that event."""

    kind: Literal["incident"] = "incident"
    group_key: str
    incident_id: UUID
    change: IncidentChange
    version: int = Field(ge=1)
    attached: int = Field(ge=0)


Notice = Annotated[AlertNotice | IncidentNotice, Field(discriminator="kind")]
NOTICE_ADAPTER: TypeAdapter[AlertNotice | IncidentNotice] = TypeAdapter(Notice)


def alert_notice(alert: Alert, received_at, intake: IntakeSettings) -> AlertNotice:
    """The notice for `alert`, with its fingerprint and group worked out."""
    return AlertNotice(group_key=group_key(alert.labels, intake), fingerprint=fingerprint(alert),
                       received_at=received_at, alert=alert)


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
            description=_description(alert),
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


def _description(alert: Alert) -> str | None:
    text = alert.annotations.get(DESCRIPTION, "").strip()
    return _clip(text, DESCRIPTION_MAX) if text else None


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
