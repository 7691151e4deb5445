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
from django.db import IntegrityError, connection, transaction
from django.db.models import ProtectedError, Q
from django.utils import timezone

from . import events, hooks, selectors, tasks
from .errors import DomainError, DuplicateFingerprint, InvalidTransition
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
# A start time further back than this is a typo (or a fuzzer), not an incident anyone will review.
MAX_STARTED_AGE = timedelta(days=365)


class ServiceInUse(DomainError):
    """A service that incidents or other records still reference cannot be deleted."""

    http_status = 409
    code = "service_in_use"


def _check_started_at(started_at: datetime, now: datetime) -> None:
    if started_at > now:
        raise ValidationError({"started_at": "cannot be in the future"})
    if started_at < now - MAX_STARTED_AGE:
        raise ValidationError(
            {"started_at": f"is more than {MAX_STARTED_AGE.days} days before now ({started_at.isoformat()}); check the date"}
        )


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


def add_comment(*, incident: Incident, user, message: str) -> TimelineEvent:
    if not message.strip():
        raise ValidationError({"message": "A comment cannot be empty."})
    return append_timeline_event(incident=incident, kind=EventKind.COMMENT, message=message, user=user)


def create_task(*, incident: Incident, title: str, user=None, owner=None, due_at: datetime | None = None,
                done: bool = False) -> Task:
    """Add an action item (the API lets a client record one that is already done)."""
    task = Task(incident=incident, title=title, owner=owner, due_at=due_at, done=done,
                done_at=timezone.now() if done else None)
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


# --- the service catalog --------------------------------------------------------------------
#
# Catalog writes have no live event type of their own (incidents.events.EVENT_TYPES): no page
# follows the catalog live. They still go through here so that validation (the dependency graph
# stays acyclic) and the refusal to delete referenced services hold for the API, the admin and
# load_catalog alike.

SERVICE_FIELDS = ("slug", "name", "owner_team", "tier", "labels", "runbook_url", "repository_url", "description")
CATALOG_LOCK = 7_245_010  # pg_advisory_xact_lock key: dependency changes are checked one at a time


def _lock_catalog() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s)", [CATALOG_LOCK])


def check_dependencies(*, service_slug: str, depends_on: Iterable[str], graph: dict[str, set[str]] | None = None) -> None:
    """Refuse a self-dependency or a dependency cycle, naming it. `graph` (slug → callee slugs)
    defaults to the catalog in the database; `service_slug`'s edges are replaced by `depends_on`."""
    targets = set(depends_on)
    if service_slug in targets:
        raise ValidationError({"depends_on": f"{service_slug} cannot depend on itself"})
    graph = {k: set(v) for k, v in (selectors.dependency_graph_by_slug() if graph is None else graph).items()}
    graph[service_slug] = targets
    cycle = selectors.dependency_cycle(graph)
    if cycle:
        if service_slug in cycle:  # name it from the service being changed
            core = cycle[:-1]
            start = core.index(service_slug)
            cycle = core[start:] + core[:start] + [service_slug]
        raise ValidationError({"depends_on": "dependency cycle: " + " → ".join(cycle)})


def _save_service(service: Service) -> Service:
    service.name = service.name or service.slug
    service.full_clean(exclude=["depends_on"])
    service.save()
    return service


def create_service(*, slug: str, name: str = "", depends_on: Iterable[Service] = (), user=None,
                   actor: str | None = None, **fields: Any) -> Service:
    """Add a service to the catalog, with its dependencies (refused if they would form a cycle)."""
    unknown = set(fields) - set(SERVICE_FIELDS)
    if unknown:
        raise ValidationError({field: "is not a service field" for field in sorted(unknown)})
    with transaction.atomic():
        _lock_catalog()
        service = _save_service(Service(slug=slug, name=name, **fields))
        _set_dependencies(service, list(depends_on))
    return service


def update_service(*, service: Service, depends_on: Iterable[Service] | None = None, user=None,
                   actor: str | None = None, **changes: Any) -> Service:
    """Edit a service's fields and, when given, replace its dependencies."""
    unknown = set(changes) - set(SERVICE_FIELDS)
    if unknown:
        raise ValidationError({field: "cannot be changed here" for field in sorted(unknown)})
    with transaction.atomic():
        _lock_catalog()
        locked = Service.objects.select_for_update().get(pk=service.pk)
        for field, value in changes.items():
            setattr(locked, field, value)
        _save_service(locked)
        if depends_on is not None:
            _set_dependencies(locked, list(depends_on))
    return locked


def set_service_dependencies(*, service: Service, depends_on: Iterable[Service]) -> Service:
    """Replace the services `service` calls. A self-dependency or a cycle is refused (400)."""
    with transaction.atomic():
        _lock_catalog()
        _set_dependencies(service, list(depends_on))
    return service


def _set_dependencies(service: Service, depends_on: list[Service]) -> None:
    check_dependencies(service_slug=service.slug, depends_on=[s.slug for s in depends_on])
    service.depends_on.set(depends_on)


def delete_service(*, service: Service, user=None, actor: str | None = None) -> None:
    """Remove a service nothing refers to. Incidents keep their services for the review, and
    rules are never deleted as a side effect: either refuses with ServiceInUse (409)."""
    with transaction.atomic():
        _lock_catalog()
        locked = Service.objects.select_for_update().get(pk=service.pk)
        referencing = list(
            Incident.objects.filter(Q(primary_service=locked) | Q(affected_services=locked))
            .distinct().order_by("id").values_list("id", flat=True)[:6]
        )
        if referencing:
            keys = ", ".join(f"INC-{pk}" for pk in referencing[:5]) + (", …" if len(referencing) > 5 else "")
            raise ServiceInUse(f"{locked.slug} cannot be deleted: incidents refer to it ({keys}); incidents are kept for the review")
        try:
            with transaction.atomic():
                locked.delete()
        except ProtectedError as exc:
            names = sorted({f"{obj._meta.verbose_name} {obj}" for obj in exc.protected_objects})
            shown = ", ".join(names[:5]) + (", …" if len(names) > 5 else "")
            raise ServiceInUse(f"{locked.slug} cannot be deleted: still used by {shown}; delete or move them first") from None
