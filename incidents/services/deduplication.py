"""Incidents opened by automated signals: one unresolved incident per fingerprint.

A signal (an alert firing, an SLO burning) either opens the incident for its fingerprint, joins
the unresolved one that already has it, or reopens one resolved moments ago. Concurrent callers
are safe: the partial unique index on the fingerprint decides, and losers merge into the winner.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Iterable

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from .. import events, hooks, selectors
from ..errors import DuplicateFingerprint
from ..models import EventKind, Incident, Service, Severity, Source, Status
from .lifecycle import _sync_grafana_annotation, _transition, create_incident, incident_event_data
from .timeline import append_timeline_event


@dataclass(frozen=True)
class OpenResult:
    incident: Incident
    created: bool
    reopened: bool = False



def _unresolved_locked(fingerprint: str) -> Incident | None:
    return Incident.objects.select_for_update().filter(fingerprint=fingerprint).exclude(status=Status.RESOLVED).first()


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
