"""Celery tasks of the incidents app: thin wrappers around services that are safe to retry."""
from celery import shared_task

from reliability_studio.telemetry import GrafanaError

from . import annotations


@shared_task(
    name="incidents.sync_grafana_annotation",
    autoretry_for=(GrafanaError,),
    retry_backoff=5,
    retry_backoff_max=300,
    max_retries=8,
    ignore_result=True,
)
def sync_grafana_annotation(incident_id: int) -> None:
    """Create or update the incident's Grafana annotation (on open, resolve and reopen)."""
    annotations.sync_incident_annotation(incident_id=incident_id)
