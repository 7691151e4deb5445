"""Alert state, grouping into incidents, automatic resolution, and external intake.

Evaluation results and external deliveries become per-series alert state here; every incident
write goes through incidents.services, and every rule write through the rule functions below
(they publish `detection.updated` after commit). Grouping decisions take a Postgres advisory lock
per connected part of the dependency graph, so that rules evaluated in parallel on several workers
never open two incidents for one problem while unrelated services never wait for each other.
"""
from __future__ import annotations

import copy
import logging
import time
import zlib
from collections import defaultdict
from datetime import datetime, timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import InterfaceError, OperationalError, connection, transaction
from django.db.models import Q
from django.utils import timezone

from incidents import services as incidents
from incidents.errors import DomainError
from incidents.events import publish
from incidents.models import EventKind, Incident, Service, Source, Status
from incidents.selectors import dependency_edges, reachable
from reliability_studio.telemetry.errors import TelemetryError

from . import evaluation
from .intake import ExternalAlert
from .models import Alert, AlertSource, AlertState, DetectionRule, RuleHealth, RuleKind, series_fingerprint

log = logging.getLogger(__name__)

# pg_advisory_xact_lock(class, key) namespaces for grouping decisions: one lock per connected
# component of the dependency graph (key = its smallest service id), one per fingerprint for
# alerts without a service.
COMPONENT_LOCK = 7_245_001
FINGERPRINT_LOCK = 7_245_002
ACTIVE_STATES = (AlertState.PENDING, AlertState.FIRING)
AUTO_SOURCES = (Source.RULE, Source.EXTERNAL_ALERT)
KIND_EVENTS = {
    RuleKind.THRESHOLD: EventKind.ALERT,
    RuleKind.ANOMALY: EventKind.METRIC_ANOMALY,
    RuleKind.LOG_PATTERN: EventKind.LOG_SPIKE,
    RuleKind.KUBERNETES: EventKind.POD_CRASH,
}


# Errors worth retrying a delivery for: the database went away or a deadlock victim was chosen.
TRANSIENT_ERRORS = (OperationalError, InterfaceError)


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
    health_events = []
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


def _set_health(rule, health, error, now, started, value) -> list[dict]:
    """Record the evaluation on the rule (not saved); the event to publish when the health changed."""
    changed = rule.health != health or rule.last_error != error[:2000]
    rule.health, rule.last_error, rule.last_evaluated_at, rule.last_value = health, error[:2000], now, value
    rule.last_duration_ms = round((time.perf_counter() - started) * 1000, 2)
    return [{"rule": rule.pk, "name": rule.name, "health": health, "error": error[:300]}] if changed else []


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
                        runbook: str = "", reason: str = "") -> None:
    """Record the change: firing opens, joins or reopens an incident; other changes go on the
    timeline of the alert's incident (with `reason` when the change is not the condition's)."""
    data = {"alert": alert.pk, "fingerprint": alert.fingerprint, "from": previous, "to": alert.state,
            "labels": alert.labels, "value": alert.value, **({"detail": detail} if detail else {}),
            **({"reason": reason} if reason else {})}
    if alert.state == AlertState.FIRING:
        route_alert_to_incident(alert, now, event_kind=event_kind, data=data, runbook=runbook)
    elif alert.incident_id is not None:
        incidents.append_timeline_event(
            incident=alert.incident, kind=event_kind, actor="detection", data=data,
            message=f"{alert.state.upper()}: {alert.name}" + (f" ({alert.service.slug})" if alert.service_id else "")
            + (f": {reason}" if reason else ""),
        )
    publish("detection.updated", {"alert": alert.pk, "name": alert.name, "state": alert.state})


def _connected_services(service: Service) -> set[int]:
    """The service and everything linked to it in the dependency graph, in either direction."""
    return {service.pk, *reachable([service.pk], dependency_edges("both"))}


def grouping_lock_key(alert: Alert, connected: set[int] | None = None) -> tuple[int, int]:
    """The advisory lock (class, key) serialising `alert`'s grouping decision: alerts on services
    connected in the dependency graph may join one incident, so they share the lock of their
    component; unconnected services, and alerts without a service, never wait for each other."""
    if alert.service_id is None:
        return FINGERPRINT_LOCK, zlib.crc32(alert.fingerprint.encode()) - 2**31  # int4 range
    connected = connected if connected is not None else _connected_services(alert.service)
    return COMPONENT_LOCK, min(connected)


def _group_candidate(alert: Alert, now: datetime, connected: set[int] | None) -> Incident | None:
    if alert.service_id is None:
        return None
    window = _seconds(settings.DETECTION_GROUPING_WINDOW_SECONDS)
    return (
        Incident.objects.active()
        .filter(source__in=AUTO_SOURCES, fingerprint__isnull=False, updated_at__gte=now - window,
                affected_services__in=connected)
        .order_by("-updated_at")
        .first()
    )


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


def auto_resolve_hold(severity: str) -> float | None:
    """Seconds all alerts must stay resolved before the incident resolves; None = never."""
    hold = settings.DETECTION_AUTO_RESOLVE_HOLD_SECONDS.get(severity)
    return None if hold is None or hold < 0 else hold


def auto_resolve_incidents(*, now: datetime | None = None) -> list[Incident]:
    """Mitigate automatically opened incidents whose alerts all cleared; resolve them after the
    hold for their severity. A new firing reopens them (route_alert_to_incident).

    Safe to run concurrently (beat on several nodes, a slow run overlapping the next): each
    incident is decided in its own transaction on its row locked with SKIP LOCKED, so an incident
    that another run or a person is changing is left for the next run, and one incident that fails
    never stops the others.
    """
    now = now or timezone.now()
    resolve_alerts_of_retired_rules(now=now)
    changed = []
    candidates = (
        Incident.objects.active().filter(source__in=AUTO_SOURCES, alerts__isnull=False)
        .distinct().order_by("pk").values_list("pk", flat=True)
    )
    for pk in list(candidates):
        try:
            incident = _auto_resolve_one(pk, now)
        except DomainError as exc:  # a person reopened or resolved it meanwhile
            log.info("auto-resolve skipped INC-%s: %s", pk, exc)
            continue
        except Exception:  # isolate: the other incidents still recover
            log.exception("auto-resolve failed for INC-%s", pk)
            continue
        if incident is not None:
            changed.append(incident)
    return changed


def _auto_resolve_one(pk: int, now: datetime) -> Incident | None:
    with transaction.atomic():
        incident = Incident.objects.select_for_update(skip_locked=True).filter(pk=pk).active().first()
        if incident is None or incident.source not in AUTO_SOURCES:
            return None  # resolved meanwhile, or locked by someone changing it: the next run decides
        states = list(incident.alerts.values_list("state", "resolved_at", "updated_at"))
        if not states or any(state in ACTIVE_STATES for state, _, _ in states):
            return None
        cleared_at = max((resolved or updated) for _, resolved, updated in states)
        hold = auto_resolve_hold(incident.severity)
        if hold is None:
            return None
        if incident.status != Status.MITIGATED:
            return incidents.transition_incident(
                incident=incident, to=Status.MITIGATED, actor="detection", note="every alert has resolved")
        if now - cleared_at >= _seconds(hold):
            return incidents.transition_incident(
                incident=incident, to=Status.RESOLVED, actor="detection",
                note=f"every alert stayed resolved for {hold:g}s")
    return None


def resolve_alerts_of_retired_rules(*, now: datetime | None = None) -> int:
    """Resolve the active alerts of disabled rules and of deleted ones (rule gone, no external
    source). No evaluation will ever clear them, and their incidents must still recover. The rule
    functions below do this when a rule is disabled or deleted; this sweep catches a rule disabled
    by any other path (a bulk update, an evaluation that raced with the disabling)."""
    now = now or timezone.now()
    stale = Alert.objects.filter(state__in=ACTIVE_STATES).filter(
        Q(rule__enabled=False) | Q(rule__isnull=True, source__isnull=True))
    count = 0
    for pk, rule_id in list(stale.values_list("pk", "rule_id")):
        count += _retire_alerts(Alert.objects.filter(pk=pk), now=now,
                                reason="its rule is disabled" if rule_id else "its rule was deleted")
    return count


def _retire_alerts(alerts, *, now: datetime, reason: str) -> int:
    """Resolve (or, while pending, clear) each alert, with a timeline entry giving the reason."""
    count = 0
    with transaction.atomic():
        locked = alerts.select_for_update(of=("self",)).filter(state__in=ACTIVE_STATES)
        for alert in locked.select_related("rule", "incident", "service").order_by("pk"):
            previous = alert.state
            if previous == AlertState.PENDING:
                alert.state, alert.active_since = AlertState.INACTIVE, None
            else:
                alert.state, alert.resolved_at = AlertState.RESOLVED, now
            alert.save()
            kind = KIND_EVENTS[alert.rule.kind] if alert.rule_id else EventKind.ALERT
            on_alert_transition(alert, previous, now, event_kind=kind, detail={}, reason=reason)
            count += 1
    return count


# --- rule writes ------------------------------------------------------------------------------

RULE_FIELDS = tuple(
    f.name for f in DetectionRule._meta.concrete_fields
    if f.editable and f.name not in {"id", *HEALTH_FIELDS, "next_evaluation_at", "created_at", "updated_at"}
)


def _rule_event(rule: DetectionRule, change: str) -> None:
    publish("detection.updated", {"rule": rule.pk, "name": rule.name, "change": change, "enabled": rule.enabled})


def _check_rule_fields(fields: dict) -> None:
    unknown = set(fields) - set(RULE_FIELDS)
    if unknown:
        raise ValidationError({field: "cannot be set here" for field in sorted(unknown)})


def create_rule(*, check_source: bool = True, user=None, **fields) -> DetectionRule:
    """Add a detection rule. Validated (and, with `check_source`, its query checked by its source,
    whose message is returned on refusal); publishes `detection.updated` after commit."""
    _check_rule_fields(fields)
    rule = DetectionRule(**fields)
    rule.full_clean()
    if check_source:
        check_rule_source(rule)
    with transaction.atomic():
        rule.save(force_insert=True)
        _rule_event(rule, "created")
    return rule


def update_rule(*, rule: DetectionRule, check_source: bool = True, user=None, **changes) -> DetectionRule:
    """Edit a rule. Disabling it resolves its active alerts (their incidents can then recover);
    enabling it schedules an evaluation now."""
    _check_rule_fields(changes)
    current = DetectionRule.objects.get(pk=rule.pk)
    draft = copy.copy(current)
    for field, value in changes.items():
        setattr(draft, field, value)
    draft.full_clean()
    # Ask the source only when what it is asked changes: an outage must not stop anyone from
    # disabling a noisy rule. Outside the transaction: it is an HTTP call.
    if check_source and any(getattr(draft, f) != getattr(current, f) for f in ("kind", "query")):
        check_rule_source(draft)
    now = timezone.now()
    with transaction.atomic():
        locked = DetectionRule.objects.select_for_update().get(pk=rule.pk)
        was_enabled = locked.enabled
        for field, value in changes.items():
            setattr(locked, field, value)
        if was_enabled and not locked.enabled:
            _retire_alerts(locked.alerts.all(), now=now, reason="its rule was disabled")
        elif locked.enabled and not was_enabled:
            locked.next_evaluation_at = now
        locked.save()
        _rule_event(locked, "updated")
    return locked


def enable_rule(*, rule: DetectionRule, user=None) -> DetectionRule:
    return update_rule(rule=rule, enabled=True, check_source=False, user=user)


def disable_rule(*, rule: DetectionRule, user=None) -> DetectionRule:
    """Stop evaluating a rule; its pending and firing alerts resolve now, saying why."""
    return update_rule(rule=rule, enabled=False, check_source=False, user=user)


def delete_rule(*, rule: DetectionRule, user=None) -> None:
    """Delete a rule. Its active alerts resolve first (with a timeline entry); the alerts stay,
    detached, as their incidents' evidence."""
    with transaction.atomic():
        locked = DetectionRule.objects.select_for_update().get(pk=rule.pk)
        _retire_alerts(locked.alerts.all(), now=timezone.now(), reason="its rule was deleted")
        pk, name = locked.pk, locked.name
        locked.delete()
        publish("detection.updated", {"rule": pk, "name": name, "change": "deleted", "enabled": False})


# --- external alerts --------------------------------------------------------------------------

def ingest_external_alerts(*, source: AlertSource, alerts: list[ExternalAlert], now: datetime | None = None,
                           delivery: str = "") -> int:
    """Apply one delivery. Idempotent: a repeated alert is the same row, and only a change of
    state (firing ↔ resolved) reaches the incident. `delivery` identifies the delivery (the intake
    gives each one an id): a retried delivery skips the alerts it already applied, so nothing is
    counted twice. Each alert is applied in its own transaction; a database error that may pass
    (lost connection, deadlock) propagates for the task to retry, anything else is logged and the
    other alerts of the delivery still apply."""
    now = now or timezone.now()
    changes = 0
    services_cache: dict = {}
    for ext in alerts:
        try:
            changes += _ingest_one(source, ext, now, delivery, services_cache)
        except TRANSIENT_ERRORS:
            raise
        except Exception:
            log.exception("external alert could not be applied",
                          extra={"source": source.pk, "fingerprint": ext.fingerprint, "delivery": delivery})
    return changes


def _ingest_one(source: AlertSource, ext: ExternalAlert, now: datetime, delivery: str, services_cache: dict) -> int:
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
        if delivery and alert.last_delivery == delivery:
            return 0  # this delivery was applied to this alert before a retry
        alert.last_delivery = delivery
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
        if alert.state == previous:
            return 0
        on_alert_transition(alert, previous, now, event_kind=EventKind.ALERT, detail={},
                            runbook=ext.annotations.get("runbook_url", ""))
        return 1


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
