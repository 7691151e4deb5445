"""Listeners: incidents' hooks (after commit) and post_save of the rows other apps own (timeline
status changes and hypothesis decisions, finished investigation runs). Each only queues a task,
after the writer's transaction commits; none writes anything."""
from __future__ import annotations

from django.db import transaction
from django.db.models.signals import post_save

from incidents import hooks
from incidents.models import EventKind, Status, TimelineEvent
from investigation.models import InvestigationRun, RunStatus

from . import tasks


def on_incident_opened(sender=None, *, incident_id: int, **_):
    tasks.enqueue(tasks.notify_opened, incident_id)


def on_incident_reopened(sender=None, *, incident_id: int, reopened_count: int, **_):
    tasks.enqueue(tasks.notify_reopened, incident_id, reopened_count)


def on_incident_resolved(sender=None, *, incident_id: int, **_):
    tasks.enqueue(tasks.notify_resolved, incident_id)


def is_status_change(event: TimelineEvent) -> bool:
    """A transition other than opening/resolving/reopening (those have hooks), or an acknowledgement."""
    if event.kind != EventKind.STATUS_CHANGE or (event.data or {}).get("notification"):
        return False
    data = event.data or {}
    if "from" in data and "to" in data:
        return data["to"] not in (Status.OPEN, Status.RESOLVED)
    return event.message == "Acknowledged"


def on_timeline_event(sender, instance: TimelineEvent, created: bool, **_):
    if not created:
        return
    if is_status_change(instance):
        incident_id, event_id = instance.incident_id, instance.pk
        transaction.on_commit(lambda: tasks.enqueue(tasks.notify_status_change, incident_id, event_id), robust=True)
    elif instance.kind == EventKind.HYPOTHESIS:  # confirmed or rejected: the top one may change
        incident_id = instance.incident_id
        transaction.on_commit(lambda: tasks.enqueue(tasks.notify_top_hypothesis, incident_id), robust=True)


def on_investigation_run(sender, instance: InvestigationRun, update_fields=None, **_):
    finished = instance.status in (RunStatus.COMPLETE, RunStatus.PARTIAL)
    if finished and (update_fields is None or "status" in update_fields):
        incident_id = instance.incident_id
        transaction.on_commit(lambda: tasks.enqueue(tasks.notify_top_hypothesis, incident_id), robust=True)


def connect() -> None:
    hooks.incident_opened.connect(on_incident_opened, dispatch_uid="notifications.opened")
    hooks.incident_reopened.connect(on_incident_reopened, dispatch_uid="notifications.reopened")
    hooks.incident_resolved.connect(on_incident_resolved, dispatch_uid="notifications.resolved")
    post_save.connect(on_timeline_event, sender=TimelineEvent, dispatch_uid="notifications.timeline")
    post_save.connect(on_investigation_run, sender=InvestigationRun, dispatch_uid="notifications.investigation_run")
