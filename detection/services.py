"""Alert state, grouping into incidents, automatic resolution, and external intake.

Evaluation results and external deliveries become per-series alert state here; every incident
write goes through incidents.services. Grouping decisions take one Postgres advisory lock so that
rules evaluated in parallel on several workers never open two incidents for one problem.
"""
from __future__ import annotations

import logging
import time
from collections import defaultdict
from datetime import datetime, timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.utils import timezone

from incidents import services as incidents
from incidents.events import publish
from incidents.models import EventKind, Incident, Service, Source, Status
from incidents.selectors import dependency_edges, reachable
from reliability_studio.telemetry.errors import TelemetryError

from . import evaluation
from .intake import ExternalAlert
from .models import Alert, AlertSource, AlertState, DetectionRule, RuleHealth, RuleKind, series_fingerprint

log = logging.getLogger(__name__)

GROUPING_LOCK = 7_245_001  # pg_advisory_xact_lock key for grouping decisions
AUTO_SOURCES = (Source.RULE, Source.EXTERNAL_ALERT)
KIND_EVENTS = {
    RuleKind.THRESHOLD: EventKind.ALERT,
    RuleKind.ANOMALY: EventKind.METRIC_ANOMALY,
    RuleKind.LOG_PATTERN: EventKind.LOG_SPIKE,
    RuleKind.KUBERNETES: EventKind.POD_CRASH,
}


def _seconds(value: float) -> timedelta:
    return timedelta(seconds=value)


# --- rules -----------------------------------------------------------------------------------

HEALTH_FIELDS = ["health", "last_error", "last_evaluated_at", "last_value", "last_duration_ms"]


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
    for rule in rules:
        started = time.perf_counter()
        try:
            observations = evaluation.evaluate(rule, now)
        except TelemetryError as exc:
            _set_health(rule, RuleHealth.UNKNOWN, str(exc), now, started, None)
            continue
        apply_observations(rule=rule, observations=observations, now=now, existing=known[rule.pk])
        values = [o.value for o in observations if o.value is not None]
        _set_health(rule, RuleHealth.OK, "", now, started, max(values) if values else None)
    DetectionRule.objects.bulk_update(rules, HEALTH_FIELDS)


def _set_health(rule, health, error, now, started, value) -> None:
    if rule.health != health or rule.last_error != error:
        publish("detection.updated", {"rule": rule.pk, "name": rule.name, "health": health, "error": error[:300]})
    rule.health, rule.last_error, rule.last_evaluated_at, rule.last_value = health, error[:2000], now, value
    rule.last_duration_ms = round((time.perf_counter() - started) * 1000, 2)


def _service_for(labels: dict, default: Service | None, cache: dict) -> Service | None:
    slug = labels.get("service")
    if slug:
        if slug not in cache:
            cache[slug] = Service.objects.filter(slug=slug).first()
        if cache[slug] is not None:
            return cache[slug]
    return default


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


# --- alerts → incidents ----------------------------------------------------------------------

def on_alert_transition(alert: Alert, previous: str, now: datetime, *, event_kind: str, detail: dict,
                        runbook: str = "") -> None:
    """Record the change: firing opens, joins or reopens an incident; other changes go on the
    timeline of the alert's incident."""
    data = {"alert": alert.pk, "fingerprint": alert.fingerprint, "from": previous, "to": alert.state,
            "labels": alert.labels, "value": alert.value, **({"detail": detail} if detail else {})}
    if alert.state == AlertState.FIRING:
        route_alert_to_incident(alert, now, event_kind=event_kind, data=data, runbook=runbook)
    elif alert.incident_id is not None:
        incidents.append_timeline_event(
            incident=alert.incident, kind=event_kind, actor="detection", data=data,
            message=f"{alert.state.upper()}: {alert.name}" + (f" ({alert.service.slug})" if alert.service_id else ""),
        )
    publish("detection.updated", {"alert": alert.pk, "name": alert.name, "state": alert.state})


def _connected_services(service: Service) -> set[int]:
    """The service and everything linked to it in the dependency graph, in either direction."""
    return {service.pk, *reachable([service.pk], dependency_edges("both"))}


def _group_candidate(alert: Alert, now: datetime) -> Incident | None:
    if alert.service_id is None:
        return None
    window = _seconds(settings.DETECTION_GROUPING_WINDOW_SECONDS)
    return (
        Incident.objects.active()
        .filter(source__in=AUTO_SOURCES, fingerprint__isnull=False, updated_at__gte=now - window,
                affected_services__in=_connected_services(alert.service))
        .order_by("-updated_at")
        .first()
    )


def route_alert_to_incident(alert: Alert, now: datetime, *, event_kind: str, data: dict, runbook: str = "") -> Incident:
    reopen = _seconds(settings.DETECTION_REOPEN_WINDOW_SECONDS)
    where = f" on {alert.service.slug}" if alert.service_id else ""
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [GROUPING_LOCK])
        target = None
        if alert.incident_id is not None:
            last = alert.incident
            if last.is_active or (last.resolved_at and last.resolved_at >= now - reopen):
                target = last
        target = target or _group_candidate(alert, now)
        fingerprint = target.fingerprint if target is not None and target.fingerprint else f"alert:{alert.fingerprint}"
        result = incidents.open_or_update_incident(
            fingerprint=fingerprint,
            title=f"{alert.name}{where}",
            severity=alert.severity,
            service=alert.service,
            source=Source.RULE if alert.rule_id else Source.EXTERNAL_ALERT,
            summary=alert.annotations.get("summary", "") or alert.annotations.get("description", ""),
            labels=alert.labels,
            started_at=min(alert.active_since or now, now),
            actor="detection",
            event_kind=event_kind,
            event_message=f"FIRING: {alert.name}{where}" + (f" value={alert.value:.4g}" if alert.value is not None else ""),
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


def auto_resolve_hold(severity: str) -> float | None:
    """Seconds all alerts must stay resolved before the incident resolves; None = never."""
    hold = settings.DETECTION_AUTO_RESOLVE_HOLD_SECONDS.get(severity)
    return None if hold is None or hold < 0 else hold


def auto_resolve_incidents(*, now: datetime | None = None) -> list[Incident]:
    """Mitigate automatically opened incidents whose alerts all cleared; resolve them after the
    hold for their severity. A new firing reopens them (route_alert_to_incident)."""
    now = now or timezone.now()
    changed = []
    candidates = Incident.objects.active().filter(source__in=AUTO_SOURCES, alerts__isnull=False).distinct()
    for incident in candidates:
        states = list(incident.alerts.values_list("state", "resolved_at", "updated_at"))
        if any(state in (AlertState.FIRING, AlertState.PENDING) for state, _, _ in states):
            continue
        cleared_at = max((resolved or updated) for _, resolved, updated in states)
        hold = auto_resolve_hold(incident.severity)
        if hold is None:
            continue
        if incident.status != Status.MITIGATED:
            changed.append(incidents.transition_incident(
                incident=incident, to=Status.MITIGATED, actor="detection", note="every alert has resolved"))
        elif now - cleared_at >= _seconds(hold):
            changed.append(incidents.transition_incident(
                incident=incident, to=Status.RESOLVED, actor="detection",
                note=f"every alert stayed resolved for {hold:g}s"))
    return changed


# --- external alerts --------------------------------------------------------------------------

def ingest_external_alerts(*, source: AlertSource, alerts: list[ExternalAlert], now: datetime | None = None) -> int:
    """Apply one delivery. Idempotent: a repeated alert is the same row, and only a change of
    state (firing ↔ resolved) reaches the incident."""
    now = now or timezone.now()
    changes = 0
    services_cache: dict = {}
    for ext in alerts:
        fingerprint = f"{source.kind}:{source.pk}:{ext.fingerprint}"
        with transaction.atomic():
            alert, _ = Alert.objects.get_or_create(
                fingerprint=fingerprint,
                defaults={"source": source, "name": ext.name, "labels": ext.labels,
                          "severity": ext.severity or source.default_severity,
                          "service": _service_for({"service": ext.service_slug} if ext.service_slug else {},
                                                  None, services_cache)},
            )
            alert = Alert.objects.select_for_update().get(pk=alert.pk)
            alert.received_count += 1
            alert.annotations = ext.annotations
            alert.value = ext.value
            previous = alert.state
            if ext.firing:
                alert.last_active_at = now
                if alert.state != AlertState.FIRING:
                    alert.state = AlertState.FIRING
                    alert.active_since = ext.starts_at or now
                    alert.firing_since, alert.resolved_at = now, None
            elif alert.state == AlertState.FIRING:
                alert.state, alert.resolved_at = AlertState.RESOLVED, ext.ends_at or now
            alert.save()
            if alert.state != previous:
                changes += 1
                on_alert_transition(alert, previous, now, event_kind=EventKind.ALERT, detail={},
                                    runbook=ext.annotations.get("runbook_url", ""))
    return changes


def validate_rule(rule: DetectionRule) -> None:
    """Field checks, then ask the rule's source whether the query is valid (its message if not)."""
    rule.full_clean()
    check_rule_source(rule)


def check_rule_source(rule: DetectionRule) -> None:
    """Raise ValidationError on `query` with the source's own message when it refuses the query."""
    try:
        evaluation.validate_rule_source(rule)
    except ValueError as exc:
        raise ValidationError({"query": f"the source refused this query: {exc}"}) from None


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
