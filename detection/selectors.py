"""Reads for the detection status page (and anything else that shows rules, alerts and sources)."""
from __future__ import annotations

from django.db.models import Case, Count, IntegerField, Max, Q, Sum, Value, When
from django.db.models.functions import Coalesce

from .models import Alert, AlertSource, AlertState, DetectionRule

ACTIVE_STATES = (AlertState.PENDING, AlertState.FIRING)


def rule_status():
    """Every rule with its service and the number of its firing and pending series (one query)."""
    return (
        DetectionRule.objects.select_related("service")
        .annotate(
            firing=Count("alerts", filter=Q(alerts__state=AlertState.FIRING)),
            pending=Count("alerts", filter=Q(alerts__state=AlertState.PENDING)),
        )
        .order_by("name")
    )


def active_alerts(limit: int = 500):
    """Alerts that are pending or firing: firing first, then the longest-standing."""
    firing_first = Case(When(state=AlertState.FIRING, then=Value(0)), default=Value(1), output_field=IntegerField())
    return (
        Alert.objects.filter(state__in=ACTIVE_STATES)
        .select_related("rule", "source", "service", "incident")
        .annotate(since=Coalesce("firing_since", "active_since"))
        .order_by(firing_first, "since", "id")[:limit]
    )


def external_source_activity():
    """Each external alert source with its last delivery and how many of its alerts fire now.

    A delivery saves every alert it names (received_count, annotations), so the newest
    `updated_at` of a source's alerts is when it last posted something.
    """
    return AlertSource.objects.annotate(
        last_received_at=Max("alerts__updated_at"),
        alerts_total=Count("alerts"),
        firing=Count("alerts", filter=Q(alerts__state=AlertState.FIRING)),
        deliveries=Coalesce(Sum("alerts__received_count"), 0),
    ).order_by("name")


def recent_external_alerts(limit: int = 10):
    """The external alerts that changed or were delivered most recently."""
    return (
        Alert.objects.filter(source__isnull=False)
        .select_related("source", "service", "incident")
        .order_by("-updated_at", "-id")[:limit]
    )
