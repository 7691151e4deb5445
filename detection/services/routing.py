"""Alerts → incidents: which incident a firing alert opens, joins or reopens.

Grouping decisions take a Postgres advisory lock per connected part of the dependency graph, so
that rules evaluated in parallel on several workers never open two incidents for one problem while
unrelated services never wait for each other.
"""
from __future__ import annotations

import zlib
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from incidents import services as incidents
from incidents.models import Incident, Service, Source, Status
from incidents.selectors import dependency_edges, reachable

from ..models import Alert

# pg_advisory_xact_lock(class, key) namespaces for grouping decisions: one lock per connected
# component of the dependency graph (key = its smallest service id); for alerts without a catalog
# service, one per sender group (an external alert's groupKey) or else one per fingerprint.
COMPONENT_LOCK = 7_245_001
FINGERPRINT_LOCK = 7_245_002
GROUP_KEY_LOCK = 7_245_003
AUTO_SOURCES = (Source.RULE, Source.EXTERNAL_ALERT)


def _seconds(value: float) -> timedelta:
    return timedelta(seconds=value)


def _connected_services(service: Service) -> set[int]:
    """The service and everything linked to it in the dependency graph, in either direction."""
    return {service.pk, *reachable([service.pk], dependency_edges("both"))}


def _int4(text: str) -> int:
    return zlib.crc32(text.encode()) - 2**31  # an advisory lock key in int4 range


def _sender_group(alert: Alert) -> str:
    """An external alert's group as its sender named it, scoped to the sender ("" for none)."""
    return f"{alert.source_id}:{alert.group_key}" if alert.group_key and alert.source_id else ""


def grouping_lock_key(alert: Alert, connected: set[int] | None = None) -> tuple[int, int]:
    """The advisory lock (class, key) serialising `alert`'s grouping decision: alerts on services
    connected in the dependency graph may join one incident, so they share the lock of their
    component; alerts without a service share their sender group's lock (they may join its
    incident). Unconnected services, other groups and ungrouped alerts never wait for each other."""
    if alert.service_id is None:
        group = _sender_group(alert)
        return (GROUP_KEY_LOCK, _int4(group)) if group else (FINGERPRINT_LOCK, _int4(alert.fingerprint))
    connected = connected if connected is not None else _connected_services(alert.service)
    return COMPONENT_LOCK, min(connected)


def _group_candidate(alert: Alert, now: datetime, connected: set[int] | None) -> Incident | None:
    """The recent automatic incident `alert` joins: one on a service connected to the alert's, or,
    for an alert without a catalog service, the incident of another alert of its sender group."""
    window = _seconds(settings.DETECTION_GROUPING_WINDOW_SECONDS)
    recent = Incident.objects.active().filter(source__in=AUTO_SOURCES, fingerprint__isnull=False,
                                              updated_at__gte=now - window)
    if alert.service_id is not None:
        return recent.filter(affected_services__in=connected).order_by("-updated_at").first()
    if _sender_group(alert):
        return (recent.filter(alerts__source_id=alert.source_id, alerts__group_key=alert.group_key)
                .order_by("-updated_at").first())
    return None


def _started_at(alert: Alert, now: datetime) -> datetime:
    """When the problem began: the alert's first sighting, never in the future and never further
    back than incidents accept (an external sender's startsAt may be anything)."""
    floor = timezone.now() - incidents.MAX_STARTED_AGE + timedelta(hours=1)
    return max(min(alert.active_since or now, now), floor)


def route_alert_to_incident(alert: Alert, now: datetime, *, event_kind: str, data: dict, runbook: str = "") -> Incident:
    reopen = _seconds(settings.DETECTION_REOPEN_WINDOW_SECONDS)
    where = f" on {alert.service.slug}" if alert.service_id else ""
    connected = _connected_services(alert.service) if alert.service_id else None
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s, %s)", list(grouping_lock_key(alert, connected)))
        target = None
        if alert.incident_id is not None:
            last = alert.incident
            if last.is_active or (last.resolved_at and last.resolved_at >= now - reopen):
                target = last
        target = target or _group_candidate(alert, now, connected)
        fingerprint = target.fingerprint if target is not None and target.fingerprint else f"alert:{alert.fingerprint}"
        summary = alert.annotations.get("summary", "") or alert.annotations.get("description", "")
        result = incidents.open_or_update_incident(
            fingerprint=fingerprint,
            title=f"{alert.name}{where}"[:200],  # Incident.title's length: an external name may be longer
            severity=alert.severity,
            service=alert.service,
            source=Source.RULE if alert.rule_id else Source.EXTERNAL_ALERT,
            summary=summary[:20_000],
            labels=alert.labels,
            started_at=_started_at(alert, now),
            actor="detection",
            event_kind=event_kind,
            event_message=(f"FIRING: {alert.name}{where}" + (f" value={alert.value:.4g}" if alert.value is not None else ""))[:10_000],
            event_data={**data, **({"runbook": runbook} if runbook else {})},
            reopen_within=reopen,
        )
        incident = result.incident
        if incident.status == Status.MITIGATED:
            incident = incidents.transition_incident(incident=incident, to=Status.INVESTIGATING, actor="detection",
                                                     note=f"{alert.name} fired again")
        Alert.objects.filter(pk=alert.pk).update(incident=incident)
        alert.incident = incident
    return incident

