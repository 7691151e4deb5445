"""What happens when an incident event arrives: notifications and the escalation schedule together,
in one transaction (Dispatch's `flows`). Celery tasks call these; receivers queue the tasks."""
from __future__ import annotations

from django.db import transaction

from incidents.models import Incident

from . import escalation, services


def incident_opened(*, incident_id: int) -> None:
    with transaction.atomic():
        services.notify_incident_opened(incident_id=incident_id)
        incident = Incident.objects.select_related("primary_service").filter(pk=incident_id).first()
        if incident is not None and incident.is_active and incident.acknowledged_at is None:
            escalation.schedule_escalation(incident=incident)


def incident_reopened(*, incident_id: int, reopened_count: int) -> None:
    services.notify_incident_reopened(incident_id=incident_id, reopened_count=reopened_count)


def incident_resolved(*, incident_id: int) -> None:
    with transaction.atomic():
        escalation.cancel_escalation(incident_id=incident_id, reason="resolved")
        services.notify_incident_resolved(incident_id=incident_id)


def status_changed(*, incident_id: int, timeline_event_id: int) -> None:
    """Acknowledgement stops escalation; the change is announced to the same destinations."""
    with transaction.atomic():
        if Incident.objects.filter(pk=incident_id, acknowledged_at__isnull=False).exists():
            escalation.cancel_escalation(incident_id=incident_id, reason="acknowledged")
        services.notify_status_change(incident_id=incident_id, timeline_event_id=timeline_event_id)


def top_hypothesis_changed(*, incident_id: int) -> None:
    services.notify_top_hypothesis(incident_id=incident_id)


def tick() -> list[int]:
    """Beat's periodic job: fire due escalation levels (their deliveries are queued on commit),
    then return the deliveries that are due without a task: retries, held ones, lost tasks."""
    escalation.fire_due_escalations()
    return services.due_delivery_ids()
