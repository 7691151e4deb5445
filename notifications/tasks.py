"""Celery tasks of notifications: thin wrappers around flows and services, safe to run twice
(the delivery and schedule rows are unique; an attempt claims its row under a lock)."""
from __future__ import annotations

from celery import shared_task
from django.conf import settings

from . import flows, services


def enqueue(task, *args, countdown: float | None = None) -> None:
    """Queue one of these tasks on NOTIFICATIONS_QUEUE when set (a worker of its own, so a burst
    of investigations cannot delay paging), else on the default queue."""
    options = {"queue": settings.NOTIFICATIONS_QUEUE} if settings.NOTIFICATIONS_QUEUE else {}
    if countdown is not None:
        options["countdown"] = countdown
    task.apply_async(args, **options)


@shared_task(name="notifications.notify_opened", ignore_result=True)
def notify_opened(incident_id: int) -> None:
    flows.incident_opened(incident_id=incident_id)


@shared_task(name="notifications.notify_reopened", ignore_result=True)
def notify_reopened(incident_id: int, reopened_count: int) -> None:
    flows.incident_reopened(incident_id=incident_id, reopened_count=reopened_count)


@shared_task(name="notifications.notify_resolved", ignore_result=True)
def notify_resolved(incident_id: int) -> None:
    flows.incident_resolved(incident_id=incident_id)


@shared_task(name="notifications.notify_status_change", ignore_result=True)
def notify_status_change(incident_id: int, timeline_event_id: int) -> None:
    flows.status_changed(incident_id=incident_id, timeline_event_id=timeline_event_id)


@shared_task(name="notifications.notify_top_hypothesis", ignore_result=True)
def notify_top_hypothesis(incident_id: int) -> None:
    flows.top_hypothesis_changed(incident_id=incident_id)


@shared_task(name="notifications.deliver", ignore_result=True)
def deliver(delivery_id: int) -> None:
    """One attempt; a retry is queued with its backoff as countdown (and beat's tick picks it up
    anyway if this queueing is lost). Inline (eager) runs leave retries to the tick."""
    retry_in = services.attempt_delivery(delivery_id=delivery_id)
    if retry_in is not None and not settings.CELERY_TASK_ALWAYS_EAGER:
        enqueue(deliver, delivery_id, countdown=max(retry_in, 0.05))


@shared_task(name="notifications.tick", ignore_result=True)
def tick() -> None:
    """Beat: fire due escalation levels; queue due retries and deliveries whose task was lost."""
    for delivery_id in flows.tick():
        enqueue(deliver, delivery_id)
