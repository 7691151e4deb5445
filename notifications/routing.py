"""Which destinations an incident goes to, and whether its team's quiet hours hold it back.

Pure reads over the configuration: routes are matched in order on service, owner team, severity
and labels; quiet hours are evaluated in the team's time zone.
"""
from __future__ import annotations

import zoneinfo
from datetime import datetime, timedelta
from datetime import timezone as dt_timezone

from django.utils import timezone

from incidents.models import Incident, Severity

from .models import Destination, QuietHours, Route


def incident_team(incident: Incident) -> str:
    return incident.primary_service.owner_team if incident.primary_service_id else ""


def incident_labels(incident: Incident) -> dict[str, str]:
    """The primary service's labels overlaid by the incident's own (the alert's) labels."""
    labels = {}
    if incident.primary_service_id:
        labels.update({k: str(v) for k, v in (incident.primary_service.labels or {}).items()})
    labels.update({k: str(v) for k, v in (incident.labels or {}).items()})
    return labels


def route_matches(route: Route, *, service_ids: set[int], teams: set[str], severity: str, labels: dict) -> bool:
    route_services = {s.pk for s in route.services.all()}
    if route_services and not route_services & service_ids:
        return False
    if route.teams and not set(route.teams) & teams:
        return False
    if route.severities and severity not in route.severities:
        return False
    for key, value in (route.labels or {}).items():
        if key not in labels or (value != "*" and labels[key] != value):
            return False
    return True


def matching_routes(incident: Incident) -> list[Route]:
    routes = list(Route.objects.filter(enabled=True).prefetch_related("services", "destinations"))
    services = list(incident.affected_services.all())
    if incident.primary_service_id:
        services.append(incident.primary_service)
    facts = {"service_ids": {s.pk for s in services}, "teams": {s.owner_team for s in services if s.owner_team},
             "severity": incident.severity, "labels": incident_labels(incident)}
    matched = []
    for route in routes:
        if route.is_default:
            continue
        if route_matches(route, **facts):
            matched.append(route)
            if route.stop:
                break
    return matched or [r for r in routes if r.is_default]


def destinations_for(incident: Incident) -> list[Destination]:
    """The enabled destinations of every matching route (or of the default routes), each once."""
    seen: dict[int, Destination] = {}
    for route in matching_routes(incident):
        for destination in route.destinations.all():
            if destination.enabled:
                seen.setdefault(destination.pk, destination)
    return list(seen.values())


def _in_window(local: datetime, quiet: QuietHours) -> datetime | None:
    """The end of the quiet window `local` falls in, or None."""
    start, end, now_t = quiet.start, quiet.end, local.timetz().replace(tzinfo=None)
    day = local.date()
    if start < end:
        if start <= now_t < end:
            return datetime.combine(day, end, tzinfo=local.tzinfo)
        return None
    # Overnight: [start, 24:00) ∪ [00:00, end).
    if now_t >= start:
        return datetime.combine(day + timedelta(days=1), end, tzinfo=local.tzinfo)
    if now_t < end:
        return datetime.combine(day, end, tzinfo=local.tzinfo)
    return None


def quiet_until(incident: Incident, now: datetime | None = None) -> datetime | None:
    """When the owner team's quiet hours end, if they hold this incident back now; else None."""
    team = incident_team(incident)
    if not team:
        return None
    quiet = QuietHours.objects.filter(team=team).first()
    if quiet is None or Severity.rank(incident.severity) > Severity.rank(quiet.max_severity):
        return None
    now = now or timezone.now()
    local = now.astimezone(zoneinfo.ZoneInfo(quiet.timezone))
    end = _in_window(local, quiet)
    return end.astimezone(dt_timezone.utc) if end else None
