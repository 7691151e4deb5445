"""The incident timeline: every entry is appended here and published as `timeline.appended`."""
from __future__ import annotations

from datetime import datetime
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from .. import events
from ..models import EventKind, Incident, TimelineEvent


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



def add_comment(*, incident: Incident, user, message: str) -> TimelineEvent:
    if not message.strip():
        raise ValidationError({"message": "A comment cannot be empty."})
    return append_timeline_event(incident=incident, kind=EventKind.COMMENT, message=message, user=user)

