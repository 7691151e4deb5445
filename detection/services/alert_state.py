"""Alert state changes and what they cause: firing routes the alert to an incident, other changes
go on its incident's timeline, and alerts no evaluation will clear (their rule is disabled or
deleted) are retired with the reason."""
from __future__ import annotations

from datetime import datetime

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from incidents import services as incidents
from incidents.events import publish
from incidents.models import EventKind, Service

from ..models import Alert, AlertState, RuleKind
from .routing import route_alert_to_incident

ACTIVE_STATES = (AlertState.PENDING, AlertState.FIRING)
KIND_EVENTS = {
    RuleKind.THRESHOLD: EventKind.ALERT,
    RuleKind.ANOMALY: EventKind.METRIC_ANOMALY,
    RuleKind.LOG_PATTERN: EventKind.LOG_SPIKE,
    RuleKind.KUBERNETES: EventKind.POD_CRASH,
}



def _service_for(labels: dict, default: Service | None, cache: dict) -> Service | None:
    slug = labels.get("service")
    if slug:
        if slug not in cache:
            cache[slug] = Service.objects.filter(slug=slug).first()
        if cache[slug] is not None:
            return cache[slug]
    return default

def on_alert_transition(alert: Alert, previous: str, now: datetime, *, event_kind: str, detail: dict,
                        runbook: str = "", reason: str = "") -> None:
    """Record the change: firing opens, joins or reopens an incident; other changes go on the
    timeline of the alert's incident (with `reason` when the change is not the condition's)."""
    data = {"alert": alert.pk, "fingerprint": alert.fingerprint, "from": previous, "to": alert.state,
            "labels": alert.labels, "value": alert.value, **({"detail": detail} if detail else {}),
            **({"reason": reason} if reason else {})}
    if alert.state == AlertState.FIRING:
        route_alert_to_incident(alert, now, event_kind=event_kind, data=data, runbook=runbook)
    elif alert.incident_id is not None:
        incidents.append_timeline_event(
            incident=alert.incident, kind=event_kind, actor="detection", data=data,
            message=f"{alert.state.upper()}: {alert.name}" + (f" ({alert.service.slug})" if alert.service_id else "")
            + (f": {reason}" if reason else ""),
        )
    publish("detection.updated", {"alert": alert.pk, "name": alert.name, "state": alert.state})


def resolve_alerts_of_retired_rules(*, now: datetime | None = None) -> int:
    """Resolve the active alerts of disabled rules and of deleted ones (rule gone, no external
    source). No evaluation will ever clear them, and their incidents must still recover. The rule
    writes (rules.py) do this when a rule is disabled or deleted; this sweep catches a rule
    disabled by any other path (a bulk update, an evaluation that raced with the disabling)."""
    now = now or timezone.now()
    stale = Alert.objects.filter(state__in=ACTIVE_STATES).filter(
        Q(rule__enabled=False) | Q(rule__isnull=True, source__isnull=True))
    count = 0
    for pk, rule_id in list(stale.values_list("pk", "rule_id")):
        count += _retire_alerts(Alert.objects.filter(pk=pk), now=now,
                                reason="its rule is disabled" if rule_id else "its rule was deleted")
    return count


def _retire_alerts(alerts, *, now: datetime, reason: str) -> int:
    """Resolve (or, while pending, clear) each alert, with a timeline entry giving the reason."""
    count = 0
    with transaction.atomic():
        locked = alerts.select_for_update(of=("self",)).filter(state__in=ACTIVE_STATES)
        for alert in locked.select_related("rule", "incident", "service").order_by("pk"):
            previous = alert.state
            if previous == AlertState.PENDING:
                alert.state, alert.active_since = AlertState.INACTIVE, None
            else:
                alert.state, alert.resolved_at = AlertState.RESOLVED, now
            alert.save()
            kind = KIND_EVENTS[alert.rule.kind] if alert.rule_id else EventKind.ALERT
            on_alert_transition(alert, previous, now, event_kind=kind, detail={}, reason=reason)
            count += 1
    return count

