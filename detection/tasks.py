"""Thin Celery wrappers around detection.services (idempotent, safe to retry)."""
from celery import shared_task
from django.conf import settings
from django.utils import timezone

from . import services
from .intake import parse_webhook
from .models import AlertSource, DetectionRule


@shared_task(name="detection.dispatch_due_rules", ignore_result=True)
def dispatch_due_rules() -> int:
    """Beat calls this every second. Due rules go out in small batches: enough tasks for every
    worker to take a share, few enough that per-task overhead does not dominate a large cycle."""
    ids = services.due_rules(timezone.now())
    size = settings.DETECTION_BATCH_SIZE
    for start in range(0, len(ids), size):
        evaluate_rules.delay(ids[start:start + size])
    return len(ids)


@shared_task(name="detection.evaluate_rules", ignore_result=True, acks_late=True)
def evaluate_rules(rule_ids: list[int]) -> int:
    """Evaluate a batch of rules; one failing source marks its rules unknown, the rest go on."""
    rules = list(DetectionRule.objects.filter(pk__in=rule_ids, enabled=True).select_related("service"))
    services.evaluate_rules(rules=rules)
    return len(rules)


@shared_task(name="detection.auto_resolve_incidents", ignore_result=True)
def auto_resolve_incidents() -> int:
    return len(services.auto_resolve_incidents())


@shared_task(name="detection.ingest_external_alerts", ignore_result=True, acks_late=True,
             autoretry_for=(Exception,), retry_backoff=True, max_retries=5)
def ingest_external_alerts(source_id: int, payload: dict) -> int:
    source = AlertSource.objects.filter(pk=source_id, enabled=True).first()
    if source is None:
        return 0
    return services.ingest_external_alerts(source=source, alerts=parse_webhook(source.kind, payload))
