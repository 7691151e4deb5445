"""Rule evaluation: ask each rule's source, then move each series' alert through its states."""
from __future__ import annotations

import time
from collections import defaultdict
from datetime import datetime

from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.utils import timezone

from incidents.events import publish
from reliability_studio.telemetry.errors import TelemetryError

from .. import evaluation
from ..models import Alert, AlertState, DetectionRule, RuleHealth, series_fingerprint
from .alert_state import KIND_EVENTS, _service_for, on_alert_transition
from .routing import _seconds

HEALTH_FIELDS = ["health", "last_error", "last_evaluated_at", "last_value", "last_duration_ms"]
VALUES_EVENT_KEY = "detection:values-event"


def evaluate_rule(*, rule: DetectionRule, now: datetime | None = None) -> None:
    """Evaluate one rule against its source and apply the result to its alerts."""
    evaluate_rules(rules=[rule], now=now)


def evaluate_rules(*, rules: list[DetectionRule], now: datetime | None = None) -> None:
    """Evaluate a batch of rules, each against its source, and apply the results to their alerts.

    A source that fails marks its rule `unknown` with the error; that rule's alert state is left
    as it was (no incident opens or resolves on missing data) and nothing raises. The batch's
    alert states are read in one query and its health written in one, so a large cycle costs
    about one source query per rule.
    """
    now = now or timezone.now()
    known: dict[int, dict[str, str]] = defaultdict(dict)
    for rule_id, fingerprint, state in Alert.objects.filter(rule__in=rules).values_list("rule_id", "fingerprint", "state"):
        known[rule_id][fingerprint] = state
    health_events = []
    before = {rule.pk: rule.last_value for rule in rules}
    for rule in rules:
        started = time.perf_counter()
        try:
            observations = evaluation.evaluate(rule, now)
        except TelemetryError as exc:
            health_events += _set_health(rule, RuleHealth.UNKNOWN, str(exc), now, started, None)
            continue
        apply_observations(rule=rule, observations=observations, now=now, existing=known[rule.pk])
        values = [o.value for o in observations if o.value is not None]
        health_events += _set_health(rule, RuleHealth.OK, "", now, started, max(values) if values else None)
    # The rows first, the events with them: a client that re-reads on the event sees the new health.
    with transaction.atomic():
        DetectionRule.objects.bulk_update(rules, HEALTH_FIELDS)
        for event in health_events:
            publish("detection.updated", event)
        if not health_events and _values_event_due(rules, before):
            publish("detection.updated", {"values": True})


def _values_event_due(rules, before: dict) -> bool:
    """Whether to tell the detection page that values moved although no state or health changed.

    Pages refresh on events only (no polling), so a value that moves inside one state would stay
    as it was last rendered. One such event per DETECTION_VALUES_EVENT_SECONDS across all workers
    (an atomic cache add), not one per rule and cycle.
    """
    if all(rule.last_value == before.get(rule.pk) for rule in rules):
        return False
    interval = getattr(settings, "DETECTION_VALUES_EVENT_SECONDS", 10)
    return interval > 0 and cache.add(VALUES_EVENT_KEY, 1, timeout=interval)


def _set_health(rule, health, error, now, started, value) -> list[dict]:
    """Record the evaluation on the rule (not saved); the event to publish when the health changed."""
    changed = rule.health != health or rule.last_error != error[:2000]
    rule.health, rule.last_error, rule.last_evaluated_at, rule.last_value = health, error[:2000], now, value
    rule.last_duration_ms = round((time.perf_counter() - started) * 1000, 2)
    return [{"rule": rule.pk, "name": rule.name, "health": health, "error": error[:300]}] if changed else []



def apply_observations(*, rule: DetectionRule, observations, now: datetime,
                       existing: dict[str, str] | None = None) -> list[Alert]:
    """Move each series' alert through inactive → pending → firing → resolved.

    Most series of most rules are quiet most of the time: a series that is inactive and stays
    inactive costs no write (and gets no row until it first becomes active), so a cycle over
    thousands of series is dominated by the source query, not by the database.
    """
    if existing is None:
        existing = dict(rule.alerts.values_list("fingerprint", "state"))
    seen, changed, services_cache = set(), [], {}
    for obs in observations:
        fingerprint = series_fingerprint(rule.pk, obs.labels)
        seen.add(fingerprint)
        if not obs.active and existing.get(fingerprint, AlertState.INACTIVE) == AlertState.INACTIVE:
            continue
        with transaction.atomic():
            alert, _ = Alert.objects.get_or_create(
                fingerprint=fingerprint,
                defaults={"rule": rule, "name": rule.name, "severity": rule.severity, "labels": obs.labels,
                          "service": _service_for(obs.labels, rule.service, services_cache)},
            )
            alert = Alert.objects.select_for_update().get(pk=alert.pk)
            if _step(alert, rule, obs.active, obs.value, now, obs.detail):
                changed.append(alert)
    # Series that disappeared from the answer count as "condition false".
    vanished = [fp for fp, state in existing.items()
                if fp not in seen and state in (AlertState.PENDING, AlertState.FIRING)]
    for fingerprint in vanished:
        with transaction.atomic():
            alert = Alert.objects.select_for_update().get(fingerprint=fingerprint)
            if _step(alert, rule, False, None, now, {}):
                changed.append(alert)
    return changed


def _step(alert: Alert, rule: DetectionRule, active: bool, value, now: datetime, detail: dict) -> bool:
    previous = alert.state
    if active:
        alert.last_active_at, alert.value = now, value
        if alert.state in (AlertState.INACTIVE, AlertState.RESOLVED):
            alert.state, alert.active_since, alert.resolved_at = AlertState.PENDING, now, None
        if alert.state == AlertState.PENDING and now - alert.active_since >= _seconds(rule.for_seconds):
            alert.state, alert.firing_since = AlertState.FIRING, now
    elif alert.state == AlertState.PENDING:
        alert.state, alert.active_since = AlertState.INACTIVE, None
    elif alert.state == AlertState.FIRING:
        # Hysteresis: the condition must stay clear for the recovery hold before resolving.
        if alert.last_active_at is None or now - alert.last_active_at >= _seconds(rule.recovery_hold_seconds):
            alert.state, alert.resolved_at = AlertState.RESOLVED, now
    alert.save()
    if alert.state == previous:
        return False
    on_alert_transition(alert, previous, now, event_kind=KIND_EVENTS[rule.kind], detail=detail,
                        runbook=rule.runbook_url)
    return True



def due_rules(now: datetime, limit: int = 5000) -> list[int]:
    """Claim the rules due for evaluation and schedule their next run (safe with several beats)."""
    with transaction.atomic():
        rules = list(
            DetectionRule.objects.select_for_update(skip_locked=True)
            .filter(enabled=True, next_evaluation_at__lte=now)
            .order_by("next_evaluation_at")[:limit]
        )
        for rule in rules:
            rule.next_evaluation_at = now + _seconds(rule.evaluation_interval_seconds)
        DetectionRule.objects.bulk_update(rules, ["next_evaluation_at"])
    return [rule.pk for rule in rules]
