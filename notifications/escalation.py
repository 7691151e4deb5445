"""Escalation: if nobody acknowledges, each level of the team's policy is notified in turn.

The schedule is durable: opening an incident writes one `ScheduledEscalation` row per step (due
at the sum of the delays so far); beat's task claims due rows with SELECT … FOR UPDATE SKIP
LOCKED, and in the same transaction either cancels them (acknowledged or resolved meanwhile) or
creates the level's deliveries and marks the row fired. A worker that dies mid-way rolls back and
the row is claimed again; the unique (incident, step) and (incident, destination, event key)
constraints mean no level is ever scheduled or sent twice.
"""
from __future__ import annotations

from datetime import datetime, timedelta

from django.db import transaction
from django.utils import timezone

from incidents import services as incident_services
from incidents.models import Incident

from . import routing, services
from .models import EscalationPolicy, EscalationState, NotificationEvent, ScheduledEscalation


def policy_for(incident: Incident) -> EscalationPolicy | None:
    """The owner team's policy, else the default one (blank team)."""
    team = routing.incident_team(incident)
    policies = {p.team: p for p in EscalationPolicy.objects.filter(enabled=True, team__in={team, ""})}
    return policies.get(team) or policies.get("")


def schedule_escalation(*, incident: Incident, start: datetime | None = None) -> list[ScheduledEscalation]:
    """Write the incident's escalation schedule (idempotent: an existing row is left alone)."""
    policy = policy_for(incident)
    if policy is None:
        return []
    due = start or timezone.now()
    rows = []
    for step in policy.steps.order_by("position"):
        due += timedelta(seconds=step.delay_seconds)
        rows.append(ScheduledEscalation(incident=incident, step=step, level=step.position, due_at=due))
    ScheduledEscalation.objects.bulk_create(rows, ignore_conflicts=True)
    return rows


def cancel_escalation(*, incident_id: int, reason: str, now: datetime | None = None) -> int:
    return ScheduledEscalation.objects.filter(incident_id=incident_id, status=EscalationState.PENDING).update(
        status=EscalationState.CANCELLED, finished_at=now or timezone.now(), reason=reason)


def fire_due_escalations(*, now: datetime | None = None, limit: int = 100) -> list[int]:
    """Fire (or cancel) every due level; returns the ids of the deliveries created. Safe with
    several beats or workers running it at once: each row is claimed by exactly one of them."""
    now = now or timezone.now()
    created = []
    with transaction.atomic():
        due = list(ScheduledEscalation.objects.select_for_update(skip_locked=True, of=("self",))
                   .select_related("step", "step__policy")
                   .filter(status=EscalationState.PENDING, due_at__lte=now).order_by("due_at", "id")[:limit])
        for row in due:
            incident = Incident.objects.select_related("primary_service").get(pk=row.incident_id)
            if incident.acknowledged_at is not None or not incident.is_active:
                row.status, row.reason = EscalationState.CANCELLED, "acknowledged" if incident.is_active else "resolved"
                row.finished_at = now
                row.save(update_fields=["status", "reason", "finished_at"])
                continue
            destinations = [d for d in row.step.destinations.all() if d.enabled]
            deliveries = services.notify(incident=incident, event=NotificationEvent.ESCALATION,
                                         event_key=f"escalation:{row.level}", destinations=destinations,
                                         level=row.level, now=now)
            created += [d.pk for d in deliveries]
            row.status, row.finished_at = EscalationState.FIRED, now
            row.reason = f"notified {', '.join(d.name for d in destinations) or 'nobody (no enabled destination)'}"
            row.save(update_fields=["status", "finished_at", "reason"])
            waited = int((now - incident.detected_at).total_seconds())
            incident_services.append_timeline_event(
                incident=incident, kind=services.TIMELINE_KIND, actor=services.ACTOR,
                message=f"Escalated to level {row.level} of {row.step.policy.name}: not acknowledged after "
                        f"{waited // 60} min {waited % 60} s",
                data={"notification": True, "escalation_level": row.level, "policy": row.step.policy.name,
                      "destinations": [d.name for d in destinations]})
    return created
