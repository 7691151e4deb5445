"""Incidents on Grafana dashboards: one annotation per incident, a region from start to resolution.

`sync_incident_annotation` reconciles Grafana with the incident (create when missing, set or clear
the end time), so it is idempotent and safe to retry; the annotation is found again by its tags
rather than by a stored id. Called by the Celery task in incidents/tasks.py after an incident
opens, resolves or reopens.
"""
from __future__ import annotations

import logging

from reliability_studio.telemetry.grafana import GrafanaClient

from .models import Incident

log = logging.getLogger(__name__)
TAG = "reliability-studio"


def _ms(value) -> int:
    return int(value.timestamp() * 1000)


def annotation_tags(incident: Incident) -> list[str]:
    tags = [TAG, incident.key, f"severity:{incident.severity}"]
    if incident.primary_service_id:
        tags.append(f"service:{incident.primary_service.slug}")
    return tags


def annotation_text(incident: Incident) -> str:
    return f"{incident.key} {incident.title} ({incident.severity}, {incident.status})"


def sync_incident_annotation(*, incident_id: int, client: GrafanaClient | None = None) -> int | None:
    """Make Grafana's annotation for the incident match it; returns the annotation id.

    Returns None when Grafana is not configured (GRAFANA_URL empty). Raises GrafanaError when
    Grafana answers with an error or cannot be reached (the task retries the retryable ones).
    """
    client = client or GrafanaClient.shared()
    if not client.configured:
        return None
    incident = Incident.objects.select_related("primary_service").get(pk=incident_id)
    existing = client.find_annotations(tags=[TAG, incident.key], limit=10)
    end_ms = _ms(incident.resolved_at) if incident.resolved_at else None
    if not existing:
        return client.create_annotation(
            annotation_text(incident), annotation_tags(incident), time_ms=_ms(incident.started_at), time_end_ms=end_ms
        )
    annotation = existing[0]
    # A reopened incident becomes open-ended again: its end moves back to its start (a point).
    wanted_end = end_ms if end_ms is not None else _ms(incident.started_at)
    text, tags = annotation_text(incident), annotation_tags(incident)
    if annotation.time_end_ms != wanted_end or annotation.text != text or sorted(annotation.tags) != sorted(tags):
        client.update_annotation(annotation.id, text=text, tags=tags, time_end_ms=wanted_end)
    return annotation.id
