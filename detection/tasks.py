"""Thin Celery wrappers around detection.services (idempotent, safe to retry)."""
from celery import shared_task
from django.utils import timezone

from . import services
from .intake import parse_webhook
from .models import AlertSource, DetectionRule


@shared_task(name="detection.dispatch_due_rules", ignore_result=True)
def dispatch_due_rules() -> int:
    """Beat calls this every second; each due rule becomes its own task so workers share them."""
    ids = services.due_rules(timezone.now())
    for rule_id in ids:
        evaluate_rule.delay(rule_id)
    return len(ids)


@shared_task(name="detection.evaluate_rule", ignore_result=True, acks_late=True)
def evaluate_rule(rule_id: int) -> None:
    rule = DetectionRule.objects.filter(pk=rule_id, enabled=True).select_related("service").first()
    if rule is not None:
        services.evaluate_rule(rule=rule)


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
