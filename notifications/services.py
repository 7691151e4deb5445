"""The writes of notifications: configuration saves, deliveries and their attempts, acknowledgements.

Keyword-only arguments; configuration is validated with full_clean() before it is saved. A
notification is a `Delivery` row first (unique per incident, destination and event key, so a
retried task or a duplicated hook cannot send twice) and is sent by `attempt_delivery`, which
claims the row under a lock, calls the channel outside any transaction, and records the result.
Incidents change only through incidents.services (acknowledge_incident, append_timeline_event).
"""
from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any, Iterable

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from incidents import events
from incidents import services as incident_services
from incidents.models import EventKind, Incident

from . import content, routing, tasks
from .channels import ChannelError, registry
from .models import Delivery, DeliveryStatus, Destination, NotificationEvent

log = logging.getLogger(__name__)
ACTOR = "notifications"
# The timeline has no "notification" kind yet (incidents owns EventKind); until it does, the
# delivery log is written as status-change entries carrying data["notification"].
TIMELINE_KIND = "notification" if "notification" in EventKind.values else EventKind.STATUS_CHANGE
# Updates go to the destinations the incident was already announced to (not held, not dropped).
ANNOUNCED = (DeliveryStatus.PENDING, DeliveryStatus.SENDING, DeliveryStatus.RETRYING, DeliveryStatus.DELIVERED,
             DeliveryStatus.FAILED)


# -- configuration ---------------------------------------------------------------------------------

def save_destination(*, destination: Destination | None = None, **fields: Any) -> Destination:
    """Create or update a destination; bad configuration raises ValidationError naming the field.

    A blank or missing `secret` keeps the stored one (the secret is write-only).
    """
    kind = fields.get("kind", destination.kind if destination else None)
    if kind not in registry:
        raise ValidationError({"kind": f"unknown destination kind {kind!r}; expected one of {', '.join(registry)}"})
    destination = destination or Destination()
    secret = fields.pop("secret", None)
    for name, value in fields.items():
        setattr(destination, name, value)
    if secret:
        destination.secret = secret
    destination.full_clean()
    destination.save()
    return destination


def send_test(*, destination: Destination) -> dict[str, Any]:
    """Send a sample notification now (the admin's and the API's test button); nothing is stored."""
    destination.full_clean()
    channel = registry[destination.kind]
    try:
        result = channel.send(destination, content.sample_message(destination_id=destination.pk), progress={})
    except ChannelError as exc:
        return {"ok": False, "error": str(exc), "status_code": exc.status_code}
    return {"ok": True, "status_code": result.status_code}


# -- creating notifications ------------------------------------------------------------------------

def backoff_seconds(attempt: int) -> float:
    """Exponential backoff after the `attempt`-th failure (1, 2, …), capped."""
    base = settings.NOTIFICATIONS_RETRY_BACKOFF_SECONDS
    return min(settings.NOTIFICATIONS_RETRY_BACKOFF_MAX_SECONDS, base * (2 ** (attempt - 1)))


def queue_deliveries(delivery_ids: Iterable[int]) -> None:
    ids = list(delivery_ids)
    if ids:
        transaction.on_commit(lambda: [tasks.enqueue(tasks.deliver, pk) for pk in ids], robust=True)


def notify(*, incident: Incident, event: str, event_key: str, destinations: Iterable[Destination], level: int = 0,
           now: datetime | None = None) -> list[Delivery]:
    """Create one delivery per destination for this event (those that exist already are skipped)
    and queue them once the transaction commits. The team's quiet hours hold low severities."""
    now = now or timezone.now()
    held_until = routing.quiet_until(incident, now)
    created = []
    with transaction.atomic():
        for destination in destinations:
            if event not in registry[destination.kind].EVENTS:
                continue  # e.g. PagerDuty carries no status or hypothesis updates
            delivery = Delivery(
                incident=incident, destination=destination, destination_name=destination.name,
                destination_kind=destination.kind, event=event, event_key=event_key, level=level,
                status=DeliveryStatus.HELD if held_until else DeliveryStatus.PENDING,
                next_attempt_at=held_until or now, created_at=now,
                detail={"max_attempts": settings.NOTIFICATIONS_MAX_ATTEMPTS},
            )
            try:
                with transaction.atomic():
                    delivery.save(force_insert=True)
            except IntegrityError:
                continue  # already notified for this event: a duplicated hook or a retried task
            created.append(delivery)
        if held_until and created:
            local = timezone.localtime(held_until)
            incident_services.append_timeline_event(
                incident=incident, kind=TIMELINE_KIND, actor=ACTOR,
                message=f"Notifications held until {local:%H:%M %Z} (team quiet hours): "
                        + ", ".join(d.destination_name for d in created),
                data={"notification": True, "held_until": held_until.isoformat(), "event": event,
                      "deliveries": [d.pk for d in created]})
        queue_deliveries(d.pk for d in created if d.status == DeliveryStatus.PENDING)
    return created


def announced_destinations(incident: Incident) -> list[Destination]:
    """The destinations an incident's earlier notifications went to (updates follow them)."""
    ids = (Delivery.objects.filter(incident=incident, status__in=ANNOUNCED, destination__enabled=True)
           .values_list("destination_id", flat=True).distinct())
    return list(Destination.objects.filter(pk__in=list(ids)))


def _incident(incident_id: int) -> Incident | None:
    return Incident.objects.select_related("primary_service").filter(pk=incident_id).first()


def notify_incident_opened(*, incident_id: int) -> list[Delivery]:
    """The first notification: the destinations of the matching routes."""
    incident = _incident(incident_id)
    if incident is None or not incident.is_active:
        return []
    return notify(incident=incident, event=NotificationEvent.OPENED, event_key="opened",
                  destinations=routing.destinations_for(incident))


def notify_incident_reopened(*, incident_id: int, reopened_count: int) -> list[Delivery]:
    incident = _incident(incident_id)
    if incident is None:
        return []
    destinations = {d.pk: d for d in routing.destinations_for(incident) + announced_destinations(incident)}
    return notify(incident=incident, event=NotificationEvent.REOPENED, event_key=f"reopened:{reopened_count}",
                  destinations=destinations.values())


def notify_incident_resolved(*, incident_id: int) -> list[Delivery]:
    incident = _incident(incident_id)
    if incident is None:
        return []
    return notify(incident=incident, event=NotificationEvent.RESOLVED, event_key=f"resolved:{incident.reopened_count}",
                  destinations=announced_destinations(incident))


def notify_status_change(*, incident_id: int, timeline_event_id: int) -> list[Delivery]:
    """A status change (or an acknowledgement) after the incident was announced. The first change
    after the acknowledgement is sent as "acknowledged" (PagerDuty acknowledges)."""
    incident = _incident(incident_id)
    if incident is None or not incident.is_active:
        return []  # resolution and reopening have their own notifications
    with transaction.atomic():
        event, key = NotificationEvent.STATUS, f"status:{timeline_event_id}"
        if incident.acknowledged_at is not None:
            if not Delivery.objects.filter(incident=incident, event=NotificationEvent.ACKNOWLEDGED).exists():
                event, key = NotificationEvent.ACKNOWLEDGED, "acknowledged"
        return notify(incident=incident, event=event, event_key=key, destinations=announced_destinations(incident))


def notify_top_hypothesis(*, incident_id: int) -> list[Delivery]:
    """A new top hypothesis goes to the destinations that already heard about the incident, once
    per hypothesis (not to those whose message already carried it)."""
    incident = _incident(incident_id)
    if incident is None or not incident.is_active:
        return []
    top = content.top_hypothesis(incident_id)
    if top is None:
        return []
    already = set(Delivery.objects.filter(incident=incident, detail__top_hypothesis=top.pk, status=DeliveryStatus.DELIVERED)
                  .values_list("destination_id", flat=True))
    destinations = [d for d in announced_destinations(incident) if d.pk not in already]
    return notify(incident=incident, event=NotificationEvent.HYPOTHESIS, event_key=f"hypothesis:{top.pk}",
                  destinations=destinations)


# -- sending ---------------------------------------------------------------------------------------

def delivery_event_data(delivery: Delivery) -> dict[str, Any]:
    return {"id": delivery.pk, "incident": delivery.incident_id, "destination": delivery.destination_name,
            "kind": delivery.destination_kind, "event": delivery.event, "event_key": delivery.event_key,
            "level": delivery.level, "status": delivery.status, "attempts": delivery.attempts,
            "error": delivery.last_error}


def _log_on_timeline(delivery: Delivery, incident: Incident, label: str) -> None:
    kind = delivery.get_destination_kind_display().split(" (")[0]
    where = f"{kind} '{delivery.destination_name}'"
    tries = f" after {delivery.attempts} attempts" if delivery.attempts > 1 else ""
    if delivery.status == DeliveryStatus.DELIVERED:
        message = f"Notified {where}: {label}{tries}"
    elif delivery.status == DeliveryStatus.FAILED:
        message = f"Notification to {where} failed{tries or ' (not retried)'}: {delivery.last_error}"
    else:
        message = f"Notification to {where} not sent: {delivery.last_error}"
    incident_services.append_timeline_event(
        incident=incident, kind=TIMELINE_KIND, actor=ACTOR, message=message[:1000],
        data={"notification": True, **delivery_event_data(delivery), "history": delivery.detail.get("history", [])})
    events.publish("notification.sent", delivery_event_data(delivery), incident_id=incident.pk)


def _finish(delivery: Delivery, incident: Incident, status: str, reason: str) -> None:
    delivery.status, delivery.last_error = status, reason[:1000]
    delivery.save()
    _log_on_timeline(delivery, incident, reason)


def attempt_delivery(*, delivery_id: int, now: datetime | None = None) -> float | None:
    """One attempt at one delivery. Returns the seconds until the next attempt when it should be
    retried, else None (delivered, failed for good, or claimed by someone else)."""
    now = now or timezone.now()
    lease = timedelta(seconds=settings.NOTIFICATIONS_DELIVERY_LEASE_SECONDS)
    with transaction.atomic():
        delivery = (Delivery.objects.select_for_update(skip_locked=True, of=("self",)).select_related("destination")
                    .filter(pk=delivery_id).first())
        if delivery is None or delivery.is_final:
            return None  # another worker holds it, or it is done
        if delivery.status == DeliveryStatus.SENDING and delivery.claimed_at and delivery.claimed_at > now - lease:
            return None  # in flight on another worker
        if delivery.status != DeliveryStatus.SENDING and delivery.next_attempt_at and delivery.next_attempt_at > now:
            return (delivery.next_attempt_at - now).total_seconds()
        incident = Incident.objects.select_related("primary_service").get(pk=delivery.incident_id)
        destination = delivery.destination
        if destination is None or not destination.enabled:
            _finish(delivery, incident, DeliveryStatus.SUPPRESSED, "the destination was disabled or deleted")
            return None
        if delivery.status == DeliveryStatus.HELD and not incident.is_active:
            _finish(delivery, incident, DeliveryStatus.SUPPRESSED, "resolved during the team's quiet hours")
            return None
        delivery.status, delivery.claimed_at = DeliveryStatus.SENDING, now
        delivery.attempts += 1
        delivery.save(update_fields=["status", "claimed_at", "attempts", "updated_at"])

    message = content.build_message(incident=incident, event=delivery.event, event_key=delivery.event_key,
                                    level=delivery.level, delivery_id=delivery.pk, destination_id=destination.pk)
    started = timezone.now()
    error: ChannelError | None = None
    result = None
    try:
        result = registry[delivery.destination_kind].send(destination, message,
                                                          progress=delivery.detail.get("progress", {}))
    except ChannelError as exc:
        error = exc
    except Exception as exc:  # a bug in a channel must not stop the others; no message: it may hold a secret
        log.error("notification channel %s raised %s", delivery.destination_kind, type(exc).__name__,
                  extra={"delivery": delivery.pk})
        error = ChannelError(f"internal error ({type(exc).__name__})", retryable=True)
    finished = timezone.now()

    with transaction.atomic():
        delivery = Delivery.objects.select_for_update().get(pk=delivery.pk)
        history = delivery.detail.setdefault("history", [])
        history.append({"at": started.isoformat(), "ms": round((finished - started).total_seconds() * 1000),
                        "ok": error is None, "code": error.status_code if error else result.status_code,
                        "error": str(error)[:300] if error else ""})
        del history[:-10]  # bounded: attempts are bounded too, this keeps the row small regardless
        if error is None:
            delivery.status, delivery.delivered_at = DeliveryStatus.DELIVERED, finished
            delivery.response_code, delivery.last_error = result.status_code, ""
            delivery.detail.update(result.detail)
            if message.top_hypothesis:
                delivery.detail["top_hypothesis"] = message.top_hypothesis["id"]
            delivery.save()
            _log_on_timeline(delivery, incident, message.event_label)
            return None
        delivery.response_code, delivery.last_error = error.status_code, str(error)[:1000]
        if error.progress:
            delivery.detail["progress"] = error.progress
        max_attempts = delivery.detail.get("max_attempts", settings.NOTIFICATIONS_MAX_ATTEMPTS)
        if error.retryable and delivery.attempts < max_attempts:
            delay = backoff_seconds(delivery.attempts)
            # From the attempt's end (or the caller's clock, when it is ahead: tests, a late tick).
            anchor = max(finished, now)
            delivery.status, delivery.next_attempt_at = DeliveryStatus.RETRYING, anchor + timedelta(seconds=delay)
            delivery.save()
            events.publish("notification.sent", delivery_event_data(delivery), incident_id=incident.pk)
            return delay
        delivery.status = DeliveryStatus.FAILED
        delivery.save()
        _log_on_timeline(delivery, incident, message.event_label)
        return None


def due_delivery_ids(*, now: datetime | None = None, limit: int = 500) -> list[int]:
    """Deliveries that should be attempted now but may have no task queued: retries and held ones
    that are due, pending ones whose task was lost, and attempts abandoned by a dead worker."""
    now = now or timezone.now()
    stale = now - timedelta(seconds=settings.NOTIFICATIONS_DELIVERY_LEASE_SECONDS)
    due = (Q(status__in=[DeliveryStatus.RETRYING, DeliveryStatus.HELD], next_attempt_at__lte=now)
           | Q(status=DeliveryStatus.PENDING, next_attempt_at__lte=stale)
           | Q(status=DeliveryStatus.SENDING, claimed_at__lte=stale))
    return list(Delivery.objects.filter(due).order_by("next_attempt_at").values_list("pk", flat=True)[:limit])


# -- acknowledging from a notification -------------------------------------------------------------

def acknowledge_from_link(*, claim, user=None) -> Incident:
    """Acknowledge through a signed link: as the signed-in user, or (when anonymous acks are
    allowed) as the recipient named in the token. Raises InvalidTransition when already done."""
    incident = Incident.objects.get(pk=claim.incident_id)
    destination = Destination.objects.filter(pk=claim.destination_id).first() if claim.destination_id else None
    via = f"{destination.get_kind_display().split(' (')[0]} notification '{destination.name}'" if destination \
        else "a notification"
    person = user if getattr(user, "is_authenticated", False) else None
    who = person.get_username() if person else f"{claim.recipient or 'unknown recipient'} (signed link, not signed in)"
    with transaction.atomic():
        incident = incident_services.acknowledge_incident(incident=incident, user=person,
                                                          note=f"acknowledged from {via} by {who}")
        incident_services.append_timeline_event(
            incident=incident, kind=TIMELINE_KIND, actor=(person.get_username() if person else claim.recipient or ACTOR)[:150],
            user=person, message=f"Acknowledged from {via} by {who}",
            data={"notification": True, "acknowledged_via": destination.kind if destination else None,
                  "destination": destination.name if destination else None, "recipient": claim.recipient,
                  "anonymous": person is None})
    return incident
