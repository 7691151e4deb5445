"""An incident's life: declare it, move it between statuses, acknowledge it, edit it.

Each function validates, writes inside one transaction, appends to the timeline and publishes one
live event per change (after commit); the Grafana annotation and the hooks other apps register
(incidents.hooks) follow the change.
"""
from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Iterable

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from .. import events, hooks, tasks
from ..errors import DuplicateFingerprint, InvalidTransition
from ..models import EventKind, Incident, Service, Source, Status
from .timeline import append_timeline_event

ALLOWED_TRANSITIONS: dict[str, frozenset[str]] = {
    Status.OPEN: frozenset({Status.INVESTIGATING, Status.MITIGATED, Status.RESOLVED}),
    Status.INVESTIGATING: frozenset({Status.MITIGATED, Status.RESOLVED}),
    # A mitigation that does not hold sends the incident back to investigating.
    Status.MITIGATED: frozenset({Status.INVESTIGATING, Status.RESOLVED}),
    # Reopen.
    Status.RESOLVED: frozenset({Status.OPEN}),
}
EDITABLE_FIELDS = ("title", "summary", "impact", "root_cause", "severity", "commander", "primary_service", "started_at")
# A start time further back than this is a typo (or a fuzzer), not an incident anyone will review.
MAX_STARTED_AGE = timedelta(days=365)


def _check_started_at(started_at: datetime, now: datetime) -> None:
    if started_at > now:
        raise ValidationError({"started_at": "cannot be in the future"})
    if started_at < now - MAX_STARTED_AGE:
        raise ValidationError(
            {"started_at": f"is more than {MAX_STARTED_AGE.days} days before now ({started_at.isoformat()}); check the date"}
        )


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
    _check_started_at(incident.started_at, now)
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
        if "started_at" in diff:
            _check_started_at(locked.started_at, timezone.now())
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

