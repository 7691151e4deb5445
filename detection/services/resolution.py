"""Automatic resolution: an incident opened by detection recovers once all its alerts have cleared
(mitigated at once, resolved after the hold for its severity)."""
from __future__ import annotations

import logging
from datetime import datetime

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from incidents import services as incidents
from incidents.models import Incident, Status
from reliability_studio.errors import DomainError

from .alert_state import ACTIVE_STATES, resolve_alerts_of_retired_rules
from .routing import AUTO_SOURCES, _seconds

log = logging.getLogger(__name__)


def auto_resolve_hold(severity: str) -> float | None:
    """Seconds all alerts must stay resolved before the incident resolves; None = never."""
    hold = settings.DETECTION_AUTO_RESOLVE_HOLD_SECONDS.get(severity)
    return None if hold is None or hold < 0 else hold


def auto_resolve_incidents(*, now: datetime | None = None) -> list[Incident]:
    """Mitigate automatically opened incidents whose alerts all cleared; resolve them after the
    hold for their severity. A new firing reopens them (route_alert_to_incident).

    Safe to run concurrently (beat on several nodes, a slow run overlapping the next): each
    incident is decided in its own transaction on its row locked with SKIP LOCKED, so an incident
    that another run or a person is changing is left for the next run, and one incident that fails
    never stops the others.
    """
    now = now or timezone.now()
    resolve_alerts_of_retired_rules(now=now)
    changed = []
    candidates = (
        Incident.objects.active().filter(source__in=AUTO_SOURCES, alerts__isnull=False)
        .distinct().order_by("pk").values_list("pk", flat=True)
    )
    for pk in list(candidates):
        try:
            incident = _auto_resolve_one(pk, now)
        except DomainError as exc:  # a person reopened or resolved it meanwhile
            log.info("auto-resolve skipped INC-%s: %s", pk, exc)
            continue
        except Exception:  # isolate: the other incidents still recover
            log.exception("auto-resolve failed for INC-%s", pk)
            continue
        if incident is not None:
            changed.append(incident)
    return changed


def _auto_resolve_one(pk: int, now: datetime) -> Incident | None:
    with transaction.atomic():
        incident = Incident.objects.select_for_update(skip_locked=True).filter(pk=pk).active().first()
        if incident is None or incident.source not in AUTO_SOURCES:
            return None  # resolved meanwhile, or locked by someone changing it: the next run decides
        states = list(incident.alerts.values_list("state", "resolved_at", "updated_at"))
        if not states or any(state in ACTIVE_STATES for state, _, _ in states):
            return None
        cleared_at = max((resolved or updated) for _, resolved, updated in states)
        hold = auto_resolve_hold(incident.severity)
        if hold is None:
            return None
        if incident.status != Status.MITIGATED:
            return incidents.transition_incident(
                incident=incident, to=Status.MITIGATED, actor="detection", note="every alert has resolved")
        if now - cleared_at >= _seconds(hold):
            return incidents.transition_incident(
                incident=incident, to=Status.RESOLVED, actor="detection",
                note=f"every alert stayed resolved for {hold:g}s")
    return None

