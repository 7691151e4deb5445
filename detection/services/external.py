"""External alerts: apply an Alertmanager or Grafana delivery (parsed by detection.intake)."""
from __future__ import annotations

import logging
from datetime import datetime

from django.db import InterfaceError, OperationalError, transaction
from django.utils import timezone

from incidents.models import EventKind

from ..intake import ExternalAlert
from ..models import Alert, AlertSource, AlertState
from .alert_state import _service_for, on_alert_transition

log = logging.getLogger(__name__)

# Errors worth retrying a delivery for: the database went away or a deadlock victim was chosen.
TRANSIENT_ERRORS = (OperationalError, InterfaceError)


def ingest_external_alerts(*, source: AlertSource, alerts: list[ExternalAlert], now: datetime | None = None,
                           delivery: str = "") -> int:
    """Apply one delivery. Idempotent: a repeated alert is the same row, and only a change of
    state (firing ↔ resolved) reaches the incident. `delivery` identifies the delivery (the intake
    gives each one an id): a retried delivery skips the alerts it already applied, so nothing is
    counted twice. Each alert is applied in its own transaction; a database error that may pass
    (lost connection, deadlock) propagates for the task to retry, anything else is logged and the
    other alerts of the delivery still apply."""
    now = now or timezone.now()
    changes = 0
    services_cache: dict = {}
    for ext in alerts:
        try:
            changes += _ingest_one(source, ext, now, delivery, services_cache)
        except TRANSIENT_ERRORS:
            raise
        except Exception:
            log.exception("external alert could not be applied",
                          extra={"source": source.pk, "fingerprint": ext.fingerprint, "delivery": delivery})
    return changes


def _ingest_one(source: AlertSource, ext: ExternalAlert, now: datetime, delivery: str, services_cache: dict) -> int:
    fingerprint = f"{source.kind}:{source.pk}:{ext.fingerprint}"
    with transaction.atomic():
        alert, _ = Alert.objects.get_or_create(
            fingerprint=fingerprint,
            defaults={"source": source, "name": ext.name, "labels": ext.labels, "group_key": ext.group_key,
                      "severity": ext.severity or source.default_severity,
                      "service": _service_for({"service": ext.service_slug} if ext.service_slug else {},
                                              None, services_cache)},
        )
        alert = Alert.objects.select_for_update().get(pk=alert.pk)
        if delivery and alert.last_delivery == delivery:
            return 0  # this delivery was applied to this alert before a retry
        alert.last_delivery = delivery
        alert.received_count += 1
        alert.group_key = ext.group_key  # the sender may have regrouped it (a changed route)
        alert.annotations = ext.annotations
        alert.value = ext.value
        previous = alert.state
        if ext.firing:
            alert.last_active_at = now
            if alert.state != AlertState.FIRING:
                alert.state = AlertState.FIRING
                alert.active_since = ext.starts_at or now
                alert.firing_since, alert.resolved_at = now, None
        elif alert.state == AlertState.FIRING:
            alert.state, alert.resolved_at = AlertState.RESOLVED, ext.ends_at or now
        alert.save()
        if alert.state == previous:
            return 0
        on_alert_transition(alert, previous, now, event_kind=EventKind.ALERT, detail={},
                            runbook=ext.annotations.get("runbook_url", ""))
        return 1

