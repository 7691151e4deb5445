"""Detection rules, per-series alert state, and the external alert sources.

An `Alert` is one series of one rule (or one external alert) with a Prometheus-like state:
inactive → pending → firing → resolved. Alerts feed incidents through incidents.services only.
"""
from __future__ import annotations

import hashlib
import json
import secrets

from django.core.exceptions import ValidationError
from django.db import models
from django.utils import timezone

from incidents.models import Incident, Service, Severity


class RuleKind(models.TextChoices):
    THRESHOLD = "threshold", "Threshold (PromQL)"
    ANOMALY = "anomaly", "Anomaly (PromQL range, statistical)"
    LOG_PATTERN = "log_pattern", "Log pattern (LogQL count)"
    KUBERNETES = "kubernetes", "Kubernetes state"


class Comparator(models.TextChoices):
    GT = ">", ">"
    GTE = ">=", "≥"
    LT = "<", "<"
    LTE = "<=", "≤"
    EQ = "==", "="
    NE = "!=", "≠"


class AnomalyMethod(models.TextChoices):
    ENSEMBLE = "ensemble", "Ensemble (default)"
    ZSCORE = "zscore", "Rolling z-score"
    ROBUST = "robust", "Rolling median / MAD"
    SEASONAL = "seasonal", "Same-hour seasonal baseline"


class KubernetesCondition(models.TextChoices):
    CRASH_LOOP = "crash_loop", "CrashLoopBackOff"
    OOM_KILLED = "oom_killed", "OOMKilled"
    RESTARTS = "restarts", "Restarts above threshold"
    UNAVAILABLE = "unavailable_replicas", "Unavailable replicas"


class RuleHealth(models.TextChoices):
    OK = "ok", "OK"
    UNKNOWN = "unknown", "Unknown (source unavailable)"
    NEVER = "never", "Not evaluated yet"


class DetectionRule(models.Model):
    name = models.CharField(max_length=200, unique=True)
    kind = models.CharField(max_length=16, choices=RuleKind.choices)
    # A rule may cover many services at once: a series' `service` label picks the service.
    # PROTECT: deleting a service must never delete its rules as a side effect (refused with 409).
    service = models.ForeignKey(Service, null=True, blank=True, on_delete=models.PROTECT, related_name="rules")
    severity = models.CharField(max_length=10, choices=Severity.choices, default=Severity.HIGH)
    query = models.TextField(blank=True, help_text="PromQL (threshold, anomaly) or LogQL metric query (log pattern)")
    comparator = models.CharField(max_length=2, choices=Comparator.choices, default=Comparator.GT)
    threshold = models.FloatField(null=True, blank=True)
    anomaly_method = models.CharField(max_length=10, choices=AnomalyMethod.choices, default=AnomalyMethod.ENSEMBLE)
    baseline_window_seconds = models.PositiveIntegerField(default=3600, help_text="anomaly: history read per evaluation")
    kubernetes_condition = models.CharField(max_length=24, choices=KubernetesCondition.choices, blank=True)
    kubernetes_namespace = models.CharField(max_length=63, blank=True)
    kubernetes_selector = models.CharField(max_length=300, blank=True, help_text="label selector, e.g. app=checkout")
    for_seconds = models.PositiveIntegerField(default=0, help_text="condition must hold this long before firing")
    recovery_hold_seconds = models.PositiveIntegerField(
        default=30, help_text="condition must stay clear this long before the alert resolves (hysteresis)"
    )
    evaluation_interval_seconds = models.PositiveIntegerField(default=5)
    labels = models.JSONField(default=dict, blank=True)
    runbook_url = models.URLField(blank=True)
    description = models.TextField(blank=True)
    enabled = models.BooleanField(default=True)

    next_evaluation_at = models.DateTimeField(default=timezone.now, db_index=True)
    last_evaluated_at = models.DateTimeField(null=True, blank=True)
    last_duration_ms = models.FloatField(null=True, blank=True)
    last_value = models.FloatField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    health = models.CharField(max_length=8, choices=RuleHealth.choices, default=RuleHealth.NEVER)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def clean(self):
        errors = {}
        needs_query = self.kind in (RuleKind.THRESHOLD, RuleKind.ANOMALY, RuleKind.LOG_PATTERN)
        if needs_query and not self.query.strip():
            errors["query"] = "a query is required for this kind of rule"
        if self.kind in (RuleKind.THRESHOLD, RuleKind.LOG_PATTERN) and self.threshold is None:
            errors["threshold"] = "a threshold is required for this kind of rule"
        if self.kind == RuleKind.KUBERNETES and not self.kubernetes_condition:
            errors["kubernetes_condition"] = "choose the Kubernetes condition to watch"
        if self.evaluation_interval_seconds < 1:
            errors["evaluation_interval_seconds"] = "must be at least 1 second"
        if self.kind == RuleKind.ANOMALY and self.baseline_window_seconds < 20 * max(1, self.evaluation_interval_seconds):
            errors["baseline_window_seconds"] = "needs at least 20 evaluation intervals of history"
        if errors:
            raise ValidationError(errors)


class AlertState(models.TextChoices):
    INACTIVE = "inactive", "Inactive"
    PENDING = "pending", "Pending"
    FIRING = "firing", "Firing"
    RESOLVED = "resolved", "Resolved"


class AlertSourceKind(models.TextChoices):
    ALERTMANAGER = "alertmanager", "Prometheus Alertmanager (webhook v4)"
    GRAFANA = "grafana", "Grafana Alerting (webhook contact point)"


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class AlertSource(models.Model):
    """An external alerting system allowed to post alerts, with its bearer token (stored hashed)."""

    name = models.CharField(max_length=100, unique=True)
    kind = models.CharField(max_length=16, choices=AlertSourceKind.choices)
    token_hash = models.CharField(max_length=64, unique=True, editable=False)
    token_hint = models.CharField(max_length=8, editable=False, help_text="last characters, to recognise it")
    default_severity = models.CharField(max_length=10, choices=Severity.choices, default=Severity.HIGH)
    enabled = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return f"{self.name} ({self.kind})"

    def set_new_token(self) -> str:
        """Generate a token, keep only its hash, and return it (shown once)."""
        token = secrets.token_urlsafe(32)
        self.token_hash = hash_token(token)
        self.token_hint = token[-6:]
        return token


class Alert(models.Model):
    """One alerting series: a rule's label set, or one external alert (by its fingerprint)."""

    fingerprint = models.CharField(max_length=200, unique=True)
    # SET_NULL: a deleted rule's alerts stay (resolved first) as the incident's evidence.
    rule = models.ForeignKey(DetectionRule, null=True, blank=True, on_delete=models.SET_NULL, related_name="alerts")
    source = models.ForeignKey(AlertSource, null=True, blank=True, on_delete=models.CASCADE, related_name="alerts")
    name = models.CharField(max_length=300)
    service = models.ForeignKey(Service, null=True, blank=True, on_delete=models.SET_NULL, related_name="alerts")
    severity = models.CharField(max_length=10, choices=Severity.choices)
    labels = models.JSONField(default=dict)
    annotations = models.JSONField(default=dict, blank=True)
    state = models.CharField(max_length=10, choices=AlertState.choices, default=AlertState.INACTIVE)
    value = models.FloatField(null=True, blank=True)
    active_since = models.DateTimeField(null=True, blank=True, help_text="condition true since (pending start)")
    last_active_at = models.DateTimeField(null=True, blank=True, help_text="condition last seen true")
    firing_since = models.DateTimeField(null=True, blank=True)
    resolved_at = models.DateTimeField(null=True, blank=True)
    incident = models.ForeignKey(Incident, null=True, blank=True, on_delete=models.SET_NULL, related_name="alerts")
    received_count = models.PositiveIntegerField(default=0, help_text="external alerts: deliveries received")
    # External alerts: the delivery last applied, so a retried delivery does not count twice.
    last_delivery = models.CharField(max_length=64, blank=True, editable=False)
    # External alerts: the sender's group (Alertmanager's and Grafana's `groupKey`, as delivered or,
    # when longer than the column, its digest). Alerts without a catalog service group by it.
    group_key = models.CharField(max_length=200, blank=True, default="", editable=False)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-updated_at"]
        indexes = [models.Index(fields=["incident", "state"]), models.Index(fields=["rule", "state"]),
                   models.Index(fields=["source", "group_key"], name="detection_alert_group_key")]

    def __str__(self) -> str:
        return f"{self.name} [{self.state}]"


def series_fingerprint(rule_id: int, labels: dict) -> str:
    """Fingerprint = rule + label set (stable across restarts and processes)."""
    digest = hashlib.sha1(json.dumps(labels, sort_keys=True).encode()).hexdigest()[:16]
    return f"rule:{rule_id}|{digest}"
