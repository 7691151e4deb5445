"""Thin Celery wrappers around detection.services (idempotent, safe to retry)."""
import logging

from celery import shared_task
from django.conf import settings
from django.utils import timezone

from . import services
from .intake import IntakeError, parse_webhook
from .models import AlertSource, DetectionRule

log = logging.getLogger(__name__)


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


# Only errors that may pass are retried; the delivery id makes a retry skip what was applied. A
# delivery was answered 202, so it is retried until the database answers again (no retry limit;
# the backoff is capped below the broker's visibility timeout, so a waiting retry is not redelivered).
@shared_task(name="detection.ingest_external_alerts", ignore_result=True, acks_late=True,
             autoretry_for=services.TRANSIENT_ERRORS, retry_backoff=True, retry_backoff_max=300, max_retries=None)
def ingest_external_alerts(source_id: int, payload: dict, delivery: str = "") -> int:
    source = AlertSource.objects.filter(pk=source_id, enabled=True).first()
    if source is None:
        return 0
    try:
        alerts = parse_webhook(source.kind, payload)
    except IntakeError as exc:  # the intake validated it; only a body queued by an older version
        log.error("queued delivery refused: %s", exc, extra={"source": source_id, "delivery": delivery})
        return 0
    return services.ingest_external_alerts(source=source, alerts=alerts, delivery=delivery)
