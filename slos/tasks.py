"""Thin Celery wrappers around slos.services (idempotent, safe to retry)."""
from celery import shared_task
from django.conf import settings
from django.core.cache import cache
from django.utils import timezone

from incidents.models import Incident

from . import services

PRUNE_KEY = "slos:pruned"


@shared_task(name="slos.recompute", ignore_result=True, acks_late=True)
def recompute() -> dict:
    """Beat: recompute every SLO, feed the burn alerts, refresh open incidents' budget impact."""
    now = timezone.now()
    stats = services.recompute_slos(now=now, batch=settings.SLO_BATCH_QUERIES)
    services.refresh_open_incident_impacts(now=now)
    if cache.add(PRUNE_KEY, 1, timeout=3600):  # once an hour is plenty
        services.prune_snapshots(now=now)
    return {"slos": stats.slos, "queries": stats.queries, "failed": stats.failed, "seconds": round(stats.seconds, 3)}


@shared_task(name="slos.record_incident_impacts", ignore_result=True, acks_late=True,
             autoretry_for=(Exception,), retry_backoff=True, max_retries=5)
def record_incident_impacts(incident_id: int) -> int:
    """On resolution: the budget each affected SLO consumed, kept for the review."""
    incident = Incident.objects.filter(pk=incident_id).first()
    if incident is None:
        return 0
    return len(services.record_incident_impacts(incident=incident))
