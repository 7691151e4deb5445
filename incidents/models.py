"""The incident system of record: services, incidents, their timeline and tasks.

Writes go through `incidents.services` only; these classes hold data, derived values and the
database constraints that keep duplicates out.
"""
from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.contrib.postgres.indexes import GinIndex
from django.contrib.postgres.search import SearchVector
from django.core.validators import RegexValidator
from django.db import models
from django.db.models import Q
from django.utils import timezone


class Severity(models.TextChoices):
    CRITICAL = "critical", "Critical"
    HIGH = "high", "High"
    MEDIUM = "medium", "Medium"
    LOW = "low", "Low"

    @classmethod
    def rank(cls, value: str) -> int:
        """Higher is worse; used to keep the highest severity when alerts group."""
        return {cls.LOW: 1, cls.MEDIUM: 2, cls.HIGH: 3, cls.CRITICAL: 4}[value]


class Status(models.TextChoices):
    OPEN = "open", "Open"
    INVESTIGATING = "investigating", "Investigating"
    MITIGATED = "mitigated", "Mitigated"
    RESOLVED = "resolved", "Resolved"


class Source(models.TextChoices):
    RULE = "rule", "Detection rule"
    EXTERNAL_ALERT = "external_alert", "External alert"
    MANUAL = "manual", "Manual"


class Tier(models.TextChoices):
    TIER_1 = "tier-1", "Tier 1 (customer-facing, critical)"
    TIER_2 = "tier-2", "Tier 2"
    TIER_3 = "tier-3", "Tier 3 (internal)"


class EventKind(models.TextChoices):
    ALERT = "alert", "Alert"
    METRIC_ANOMALY = "metric_anomaly", "Metric anomaly"
    LOG_SPIKE = "log_spike", "Log spike"
    POD_CRASH = "pod_crash", "Pod crash"
    K8S_EVENT = "k8s_event", "Kubernetes event"
    DEPLOY = "deploy", "Deploy"
    STATUS_CHANGE = "status_change", "Status change"
    COMMENT = "comment", "Comment"
    HYPOTHESIS = "hypothesis", "Hypothesis"
    REMEDIATION = "remediation", "Remediation"
    SLO_BURN = "slo_burn", "SLO burn"


slug_validator = RegexValidator(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$", "Use lowercase letters, digits and dashes.")


class Service(models.Model):
    slug = models.SlugField(max_length=63, unique=True, validators=[slug_validator])
    name = models.CharField(max_length=120)
    owner_team = models.CharField(max_length=120, blank=True)
    tier = models.CharField(max_length=8, choices=Tier.choices, default=Tier.TIER_2)
    labels = models.JSONField(default=dict, blank=True)
    runbook_url = models.URLField(blank=True)
    repository_url = models.URLField(blank=True)
    description = models.TextField(blank=True)
    depends_on = models.ManyToManyField("self", symmetrical=False, related_name="dependents", blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["slug"]

    def __str__(self) -> str:
        return self.slug


class IncidentQuerySet(models.QuerySet):
    def active(self):
        return self.exclude(status=Status.RESOLVED)

    def search(self, text: str):
        from django.contrib.postgres.search import SearchQuery

        return self.annotate(search=INCIDENT_SEARCH_VECTOR).filter(
            search=SearchQuery(text, config="english", search_type="websearch")
        )


INCIDENT_SEARCH_VECTOR = SearchVector("title", "summary", config="english")


class Incident(models.Model):
    title = models.CharField(max_length=200)
    summary = models.TextField(blank=True, max_length=20_000)
    impact = models.TextField(blank=True, max_length=20_000)
    root_cause = models.TextField(blank=True, max_length=20_000)
    severity = models.CharField(max_length=10, choices=Severity.choices)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.OPEN)
    source = models.CharField(max_length=16, choices=Source.choices, default=Source.MANUAL)
    # Identifies "the same problem": unique among unresolved incidents (partial unique index).
    fingerprint = models.CharField(max_length=200, null=True, blank=True)
    labels = models.JSONField(default=dict, blank=True)
    primary_service = models.ForeignKey(
        Service, null=True, blank=True, on_delete=models.PROTECT, related_name="primary_incidents"
    )
    affected_services = models.ManyToManyField(Service, related_name="incidents", blank=True)
    commander = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="commanded_incidents"
    )
    started_at = models.DateTimeField(default=timezone.now)
    detected_at = models.DateTimeField(default=timezone.now)
    acknowledged_at = models.DateTimeField(null=True, blank=True)
    mitigated_at = models.DateTimeField(null=True, blank=True)
    resolved_at = models.DateTimeField(null=True, blank=True)
    reopened_count = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = IncidentQuerySet.as_manager()

    class Meta:
        ordering = ["-started_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["fingerprint"],
                condition=~Q(status="resolved") & Q(fingerprint__isnull=False),
                name="one_unresolved_incident_per_fingerprint",
            ),
            models.CheckConstraint(condition=Q(detected_at__gte=models.F("started_at")), name="detected_after_started"),
        ]
        indexes = [
            models.Index(fields=["-started_at", "-id"], name="incident_newest_first"),
            models.Index(fields=["status", "-started_at"]),
            models.Index(fields=["severity"]),
            GinIndex(INCIDENT_SEARCH_VECTOR, name="incident_search_gin"),
        ]

    def __str__(self) -> str:
        return f"{self.key} {self.title}"

    @property
    def key(self) -> str:
        return f"INC-{self.pk}"

    @property
    def is_active(self) -> bool:
        return self.status != Status.RESOLVED

    # Derived durations: never typed in, always computed from the timestamps.
    @property
    def time_to_detect(self) -> timedelta:
        return self.detected_at - self.started_at

    @property
    def time_to_acknowledge(self) -> timedelta | None:
        return self.acknowledged_at - self.detected_at if self.acknowledged_at else None

    @property
    def time_to_mitigate(self) -> timedelta | None:
        return self.mitigated_at - self.started_at if self.mitigated_at else None

    @property
    def time_to_resolve(self) -> timedelta | None:
        return self.resolved_at - self.started_at if self.resolved_at else None


class AppendOnlyError(Exception):
    pass


class TimelineEventQuerySet(models.QuerySet):
    def update(self, **kwargs):
        raise AppendOnlyError("timeline events are append-only")

    def delete(self):
        raise AppendOnlyError("timeline events are append-only")


class TimelineEvent(models.Model):
    incident = models.ForeignKey(Incident, on_delete=models.CASCADE, related_name="timeline")
    kind = models.CharField(max_length=20, choices=EventKind.choices)
    occurred_at = models.DateTimeField(default=timezone.now)
    created_at = models.DateTimeField(auto_now_add=True)
    # "alice" for people, "detection", "investigation" ... for the system's own components.
    actor = models.CharField(max_length=150)
    actor_user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    message = models.TextField(max_length=10_000)
    data = models.JSONField(default=dict, blank=True)

    objects = TimelineEventQuerySet.as_manager()

    class Meta:
        ordering = ["occurred_at", "id"]
        indexes = [models.Index(fields=["incident", "occurred_at"])]

    def save(self, *args, **kwargs):
        if self.pk is not None and not kwargs.get("force_insert"):
            raise AppendOnlyError("timeline events are append-only")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise AppendOnlyError("timeline events are append-only")

    def __str__(self) -> str:
        return f"{self.occurred_at:%Y-%m-%d %H:%M:%S} {self.kind}: {self.message[:60]}"


class Task(models.Model):
    incident = models.ForeignKey(Incident, on_delete=models.CASCADE, related_name="tasks")
    title = models.CharField(max_length=300)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    done = models.BooleanField(default=False)
    done_at = models.DateTimeField(null=True, blank=True)
    due_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["done", "created_at", "id"]

    def __str__(self) -> str:
        return self.title
