"""The only code that opens, updates, transitions and resolves incidents.

Every function here takes keyword-only arguments, validates, writes inside one transaction, appends
to the timeline and publishes one live event per change (after commit). Other apps call these;
they never write incident rows themselves.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Iterable

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from . import events, hooks, selectors, tasks
from .errors import DuplicateFingerprint, InvalidTransition
from .models import EventKind, Incident, Service, Severity, Source, Status, Task, TimelineEvent

ALLOWED_TRANSITIONS: dict[str, frozenset[str]] = {
    Status.OPEN: frozenset({Status.INVESTIGATING, Status.MITIGATED, Status.RESOLVED}),
    Status.INVESTIGATING: frozenset({Status.MITIGATED, Status.RESOLVED}),
    # A mitigation that does not hold sends the incident back to investigating.
    Status.MITIGATED: frozenset({Status.INVESTIGATING, Status.RESOLVED}),
    # Reopen.
    Status.RESOLVED: frozenset({Status.OPEN}),
}
EDITABLE_FIELDS = ("title", "summary", "impact", "root_cause", "severity", "commander", "primary_service", "started_at")


@dataclass(frozen=True)
class OpenResult:
    incident: Incident
    created: bool
    reopened: bool = False


def incident_event_data(incident: Incident) -> dict[str, Any]:
    """The compact incident shape sent with live events."""
    return {
        "id": incident.pk,
        "key": incident.key,
        "title": incident.title,
        "severity": incident.severity,
        "status": incident.status,
        "service": incident.primary_service.slug if incident.primary_service_id else None,
        "started_at": incident.started_at,
        "updated_at": incident.updated_at,
    }


# What the Grafana annotation shows (incidents/annotations.py): a change re-syncs it.
ANNOTATED_FIELDS = {"title", "severity", "primary_service"}


def _sync_grafana_annotation(incident: Incident) -> None:
    """Dashboards show incidents as annotations: queue the sync once this transaction commits."""
    if settings.GRAFANA_URL:
        transaction.on_commit(lambda: tasks.sync_grafana_annotation.delay(incident.pk), robust=True)


def _actor_name(actor: str | None, user) -> str:
    if user is not None and getattr(user, "is_authenticated", False):
        return user.get_username()
    return actor or "system"


def append_timeline_event(
    *,
    incident: Incident,
    kind: str,
    message: str,
    actor: str | None = None,
    user=None,
    data: dict | None = None,
    occurred_at: datetime | None = None,
) -> TimelineEvent:
    """Append one entry to an incident's timeline and publish `timeline.appended`."""
    if kind not in EventKind.values:
        raise ValidationError({"kind": f"unknown timeline kind {kind!r}"})
    event = TimelineEvent(
        incident=incident,
        kind=kind,
        message=message,
        actor=_actor_name(actor, user),
        actor_user=user if getattr(user, "is_authenticated", False) else None,
        data=data or {},
        occurred_at=occurred_at or timezone.now(),
    )
    event.full_clean(exclude=["incident", "actor_user"])
    with transaction.atomic():
        event.save(force_insert=True)
        events.publish("timeline.appended", timeline_event_data(event), incident_id=incident.pk)
    return event


def timeline_event_data(event: TimelineEvent) -> dict[str, Any]:
    return {
        "id": event.pk,
        "incident": event.incident_id,
        "kind": event.kind,
        "occurred_at": event.occurred_at,
        "actor": event.actor,
        "message": event.message,
        "data": event.data,
    }


def _unresolved_locked(fingerprint: str) -> Incident | None:
    return Incident.objects.select_for_update().filter(fingerprint=fingerprint).exclude(status=Status.RESOLVED).first()


def create_incident(
    *,
    title: str,
    severity: str,
    user=None,
    actor: str | None = None,
    summary: str = "",
    impact: str = "",
    source: str = Source.MANUAL,
    fingerprint: str | None = None,
    primary_service: Service | None = None,
    affected_services: Iterable[Service] = (),
    labels: dict | None = None,
    started_at: datetime | None = None,
    commander=None,
) -> Incident:
    """Declare an incident. A fingerprint already held by an unresolved incident is refused."""
    now = timezone.now()
    incident = Incident(
        title=title,
        severity=severity,
        summary=summary,
        impact=impact,
        source=source,
        fingerprint=fingerprint or None,
        primary_service=primary_service,
        labels=labels or {},
        started_at=started_at or now,
        detected_at=now,
        commander=commander,
    )
    incident.full_clean(validate_constraints=False)
    if incident.started_at > now:
        raise ValidationError({"started_at": "cannot be in the future"})
    with transaction.atomic():  # the row, its services and its first timeline entry, or nothing
        try:
            with transaction.atomic():
                incident.save(force_insert=True)
        except IntegrityError:
            raise DuplicateFingerprint(f"an unresolved incident already has fingerprint {fingerprint!r}") from None
        services = {s.pk: s for s in affected_services}
        if primary_service is not None:
            services[primary_service.pk] = primary_service
        incident.affected_services.set(services.values())
        append_timeline_event(
            incident=incident,
            kind=EventKind.STATUS_CHANGE,
            message=f"Incident declared ({severity})",
            actor=actor,
            user=user,
            data={"to": Status.OPEN, "source": source},
        )
        events.publish("incident.created", incident_event_data(incident), incident_id=incident.pk)
        _sync_grafana_annotation(incident)
        hooks.send_on_commit(hooks.incident_opened, incident_id=incident.pk)
    return incident


def open_or_update_incident(
    *,
    fingerprint: str,
    title: str,
    severity: str,
    service: Service | None = None,
    affected_services: Iterable[Service] = (),
    source: str = Source.RULE,
    summary: str = "",
    labels: dict | None = None,
    started_at: datetime | None = None,
    actor: str = "detection",
    event_kind: str = EventKind.ALERT,
    event_message: str | None = None,
    event_data: dict | None = None,
    reopen_within: timedelta | None = None,
) -> OpenResult:
    """Open the incident for `fingerprint`, or update the unresolved one that already has it.

    Safe under concurrency: the partial unique index admits one unresolved incident per
    fingerprint; a caller that loses the insert race waits for the winner's commit and updates
    the winner's row instead. With `reopen_within`, a matching incident resolved that recently is
    reopened rather than a new one opened (a flapping problem stays one incident).
    """
    if not fingerprint:
        raise ValidationError({"fingerprint": "is required"})
    if severity not in Severity.values:
        raise ValidationError({"severity": f"unknown severity {severity!r}"})
    message = event_message or title
    for _attempt in range(3):
        with transaction.atomic():
            incident = _unresolved_locked(fingerprint)
            if incident is not None:
                _merge_signal(incident, severity, service, affected_services, actor, event_kind, message, event_data)
                return OpenResult(incident, created=False)
            if reopen_within is not None:
                recent = (
                    Incident.objects.select_for_update()
                    .filter(fingerprint=fingerprint, status=Status.RESOLVED, resolved_at__gte=timezone.now() - reopen_within)
                    .order_by("-resolved_at")
                    .first()
                )
                if recent is not None:
                    try:
                        with transaction.atomic():
                            _transition(recent, Status.OPEN, actor=actor, user=None, note="signal returned")
                    except IntegrityError:
                        continue  # another caller opened a fresh one meanwhile: merge into it
                    _merge_signal(recent, severity, service, affected_services, actor, event_kind, message, event_data)
                    return OpenResult(recent, created=False, reopened=True)
            try:
                with transaction.atomic():
                    incident = create_incident(
                        title=title,
                        severity=severity,
                        summary=summary,
                        source=source,
                        fingerprint=fingerprint,
                        primary_service=service,
                        affected_services=affected_services,
                        labels=labels,
                        started_at=started_at,
                        actor=actor,
                    )
                    append_timeline_event(
                        incident=incident, kind=event_kind, message=message, actor=actor, data=event_data
                    )
                return OpenResult(incident, created=True)
            except DuplicateFingerprint:
                continue  # lost the race: the loop now finds and updates the winner's row
    raise DuplicateFingerprint(f"could not open or update the incident for fingerprint {fingerprint!r}")


def _merge_signal(incident, severity, service, affected_services, actor, event_kind, message, event_data) -> None:
    changed = []
    if Severity.rank(severity) > Severity.rank(incident.severity):
        changed.append(f"severity {incident.severity} → {severity}")
        incident.severity = severity
        incident.save(update_fields=["severity", "updated_at"])
    new_services = {s.pk: s for s in affected_services}
    if service is not None:
        new_services[service.pk] = service
    if new_services:
        before = set(incident.affected_services.values_list("pk", flat=True))
        incident.affected_services.add(*new_services.values())
        joined = sorted(set(new_services) - before)
        if joined:
            hooks.send_on_commit(hooks.services_joined, incident_id=incident.pk, service_ids=joined)
    if service is not None and incident.primary_service_id not in (None, service.pk):
        callees = selectors.reachable([incident.primary_service_id], selectors.dependency_edges("callees"))
        if service.pk in callees:
            changed.append(_move_primary_service(incident, service))
    append_timeline_event(incident=incident, kind=event_kind, message=message, actor=actor, data=event_data)
    if changed:
        append_timeline_event(
            incident=incident, kind=EventKind.STATUS_CHANGE, message="; ".join(changed).capitalize(), actor=actor
        )
        _sync_grafana_annotation(incident)  # its text and tags carry the severity and primary service
    events.publish("incident.updated", incident_event_data(incident), incident_id=incident.pk)


def _move_primary_service(incident: Incident, service: Service) -> str:
    """A failing dependency of the primary service is the likelier origin: it becomes primary.

    A fault deep in the graph usually fires first on the callers (they carry more traffic), so
    without this the incident would stay named after the frontend while the payment service is
    what broke. The title follows when it is still the generated "<alert> on <service>".
    """
    old = incident.primary_service
    incident.primary_service = service
    fields = ["primary_service", "updated_at"]
    if incident.source != Source.MANUAL and incident.title.endswith(f" on {old.slug}"):
        incident.title = incident.title[: -len(old.slug)] + service.slug
        fields.append("title")
    incident.save(update_fields=fields)
    return f"primary service {old.slug} → {service.slug} ({old.slug} depends on it)"


def _transition(incident: Incident, to: str, *, actor: str | None, user, note: str = "") -> Incident:
    """Validate and apply one status change on a locked row (caller holds the transaction)."""
    if to not in Status.values:
        raise InvalidTransition(f"unknown status {to!r}")
    current = incident.status
    if to == current:
        raise InvalidTransition(f"{incident.key} is already {current}")
    if to not in ALLOWED_TRANSITIONS[current]:
        allowed = ", ".join(sorted(ALLOWED_TRANSITIONS[current]))
        raise InvalidTransition(f"{incident.key} cannot go from {current} to {to}; allowed: {allowed}")
    now = timezone.now()
    human = user is not None and getattr(user, "is_authenticated", False)
    if human and incident.acknowledged_at is None and to != Status.OPEN:
        incident.acknowledged_at = now  # acting on an incident acknowledges it
    if to == Status.MITIGATED:
        incident.mitigated_at = now
    elif to == Status.RESOLVED:
        incident.resolved_at = now
        incident.mitigated_at = incident.mitigated_at or now
    elif to == Status.OPEN:
        incident.resolved_at = None
        incident.mitigated_at = None
        incident.reopened_count += 1
    elif to == Status.INVESTIGATING:
        incident.mitigated_at = None if current == Status.MITIGATED else incident.mitigated_at
    incident.status = to
    incident.save()
    append_timeline_event(
        incident=incident,
        kind=EventKind.STATUS_CHANGE,
        message=f"{current} → {to}" + (f": {note}" if note else ""),
        actor=actor,
        user=user,
        data={"from": current, "to": to, "note": note},
    )
    events.publish("incident.updated", incident_event_data(incident), incident_id=incident.pk)
    if to in (Status.RESOLVED, Status.OPEN):  # the annotation's region ends, or opens again
        _sync_grafana_annotation(incident)
    if to == Status.OPEN:
        hooks.send_on_commit(hooks.incident_reopened, incident_id=incident.pk, reopened_count=incident.reopened_count)
    elif to == Status.RESOLVED:
        hooks.send_on_commit(hooks.incident_resolved, incident_id=incident.pk)
    return incident


def transition_incident(*, incident: Incident, to: str, user=None, actor: str | None = None, note: str = "") -> Incident:
    """Move an incident to another status; invalid moves raise InvalidTransition (HTTP 409)."""
    with transaction.atomic():
        locked = Incident.objects.select_for_update().get(pk=incident.pk)
        if to == Status.OPEN and locked.fingerprint:
            clash = Incident.objects.filter(fingerprint=locked.fingerprint).exclude(status=Status.RESOLVED)
            if clash.exclude(pk=locked.pk).exists():
                raise DuplicateFingerprint(
                    f"cannot reopen {locked.key}: {clash.first().key} is already open for the same problem"
                )
        return _transition(locked, to, actor=actor, user=user, note=note)


def acknowledge_incident(*, incident: Incident, user, note: str = "") -> Incident:
    """Acknowledge: the responder takes it (commander if none), and open becomes investigating."""
    with transaction.atomic():
        locked = Incident.objects.select_for_update().get(pk=incident.pk)
        if locked.status == Status.RESOLVED:
            raise InvalidTransition(f"{locked.key} is resolved; reopen it first")
        if locked.acknowledged_at is not None:
            raise InvalidTransition(f"{locked.key} was already acknowledged")
        locked.acknowledged_at = timezone.now()
        if locked.commander_id is None:
            locked.commander = user
        locked.save(update_fields=["acknowledged_at", "commander", "updated_at"])
        if locked.status == Status.OPEN:
            return _transition(locked, Status.INVESTIGATING, actor=None, user=user, note=note or "acknowledged")
        append_timeline_event(
            incident=locked, kind=EventKind.STATUS_CHANGE, message="Acknowledged", user=user, data={"note": note}
        )
        events.publish("incident.updated", incident_event_data(locked), incident_id=locked.pk)
        return locked


def update_incident(*, incident: Incident, user=None, actor: str | None = None, **changes: Any) -> Incident:
    """Edit the descriptive fields (title, summary, impact, root cause, severity, commander...)."""
    affected = changes.pop("affected_services", None)
    unknown = set(changes) - set(EDITABLE_FIELDS)
    if unknown:
        raise ValidationError({field: "cannot be changed here" for field in sorted(unknown)})
    with transaction.atomic():
        locked = Incident.objects.select_for_update().get(pk=incident.pk)
        diff = []
        for field, value in changes.items():
            old = getattr(locked, field)
            if old != value:
                diff.append(field)
                setattr(locked, field, value)
        locked.full_clean(validate_constraints=False)
        if locked.started_at > locked.detected_at:
            raise ValidationError({"started_at": "cannot be after the detection time"})
        if diff:
            locked.save()
        if affected is not None:
            locked.affected_services.set(affected)
            diff.append("affected_services")
        if diff:
            append_timeline_event(
                incident=locked,
                kind=EventKind.STATUS_CHANGE,
                message="Updated " + ", ".join(diff),
                actor=actor,
                user=user,
                data={"fields": diff, "severity": locked.severity},
            )
            events.publish("incident.updated", incident_event_data(locked), incident_id=locked.pk)
            if ANNOTATED_FIELDS.intersection(diff):
                _sync_grafana_annotation(locked)
        return locked


def add_comment(*, incident: Incident, user, message: str) -> TimelineEvent:
    if not message.strip():
        raise ValidationError({"message": "A comment cannot be empty."})
    return append_timeline_event(incident=incident, kind=EventKind.COMMENT, message=message, user=user)


def create_task(*, incident: Incident, title: str, user=None, owner=None, due_at: datetime | None = None) -> Task:
    task = Task(incident=incident, title=title, owner=owner, due_at=due_at)
    task.full_clean()
    with transaction.atomic():
        task.save()
        events.publish("task.updated", task_event_data(task), incident_id=incident.pk)
    return task


def update_task(*, task: Task, user=None, **changes: Any) -> Task:
    allowed = {"title", "owner", "done", "due_at"}
    unknown = set(changes) - allowed
    if unknown:
        raise ValidationError({field: "cannot be changed here" for field in sorted(unknown)})
    with transaction.atomic():
        locked = Task.objects.select_for_update().get(pk=task.pk)
        for field, value in changes.items():
            setattr(locked, field, value)
        if "done" in changes:
            locked.done_at = timezone.now() if locked.done else None
        locked.full_clean()
        locked.save()
        events.publish("task.updated", task_event_data(locked), incident_id=locked.incident_id)
    return locked


def task_event_data(task: Task) -> dict[str, Any]:
    return {"id": task.pk, "incident": task.incident_id, "title": task.title, "done": task.done, "owner": task.owner_id}
