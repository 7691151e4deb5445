"""Action items on an incident: each change publishes `task.updated`.

(Named `action_items`, not `tasks`: `incidents.tasks` is the app's Celery tasks module, and
`incidents.services.tasks` still refers to it.)
"""
from __future__ import annotations

from datetime import datetime
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from .. import events
from ..models import Incident, Task


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

