"""The automated investigation of an incident: runs, evidence snapshots, hypotheses, changes, review.

Writes go through `investigation.services`; these classes hold data and the database constraints
that keep a retried task from duplicating anything (a run per trigger, evidence per query,
hypothesis per kind and service).
"""
from __future__ import annotations

import hashlib

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q
from django.utils import timezone

from incidents.models import Incident, Service


class Trigger(models.TextChoices):
    OPENED = "opened", "Incident opened"
    REOPENED = "reopened", "Incident reopened"
    SERVICE_JOINED = "service_joined", "Service joined"
    MANUAL = "manual", "Re-run on demand"


class RunStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    COMPLETE = "complete", "Complete"
    PARTIAL = "partial", "Complete, some sources unavailable"
    FAILED = "failed", "Failed"


# The steps of a run, in order; each publishes `investigation.progress` when it starts and ends.
STEPS = (
    ("scoping", "Scoping"),
    ("metrics", "Collecting metrics"),
    ("logs", "Collecting logs"),
    ("traces", "Collecting traces"),
    ("kubernetes", "Collecting Kubernetes state"),
    ("changes", "Collecting changes"),
    ("ranking", "Ranking"),
    ("summarising", "Summarising"),
)


class StepState(models.TextChoices):
    PENDING = "pending", "Pending"
    RUNNING = "running", "Running"
    DONE = "done", "Done"
    UNAVAILABLE = "unavailable", "Source unavailable"
    TIMED_OUT = "timed_out", "Timed out"
    NOT_CONFIGURED = "not_configured", "Not configured"
    FAILED = "failed", "Failed"


def initial_steps() -> list[dict]:
    return [{"name": name, "label": label, "state": StepState.PENDING, "detail": "", "started_at": None,
             "finished_at": None} for name, label in STEPS]


class InvestigationRun(models.Model):
    incident = models.ForeignKey(Incident, on_delete=models.CASCADE, related_name="investigation_runs")
    trigger = models.CharField(max_length=16, choices=Trigger.choices)
    # What makes a trigger "the same": "opened", "reopened:2", "joined:<service ids>", "manual:<uuid>".
    # Unique per incident, so a duplicated delivery of the same trigger finds the existing run.
    trigger_key = models.CharField(max_length=200)
    status = models.CharField(max_length=10, choices=RunStatus.choices, default=RunStatus.QUEUED)
    steps = models.JSONField(default=initial_steps)
    # Services in scope (slugs, with their role: primary / affected / neighbour) and the windows.
    scope = models.JSONField(default=dict, blank=True)
    window_start = models.DateTimeField(null=True, blank=True)
    window_end = models.DateTimeField(null=True, blank=True)
    baseline_start = models.DateTimeField(null=True, blank=True)
    baseline_end = models.DateTimeField(null=True, blank=True)
    ranking = models.JSONField(default=list, blank=True)  # [{"service", "score", "confidence", "onset", ...}]
    summary = models.TextField(blank=True, max_length=20_000)
    impact = models.JSONField(default=dict, blank=True)
    error = models.TextField(blank=True, max_length=5_000)
    attempts = models.PositiveIntegerField(default=0)
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["incident", "trigger_key"], name="one_run_per_trigger"),
        ]
        indexes = [models.Index(fields=["incident", "-created_at"])]

    def __str__(self) -> str:
        return f"{self.incident.key} run {self.pk} ({self.trigger}, {self.status})"

    @property
    def is_finished(self) -> bool:
        return self.status in (RunStatus.COMPLETE, RunStatus.PARTIAL, RunStatus.FAILED)

    @property
    def duration_seconds(self) -> float | None:
        if self.started_at and self.finished_at:
            return (self.finished_at - self.started_at).total_seconds()
        return None


class EvidenceKind(models.TextChoices):
    METRICS = "metrics", "Metrics"
    LOGS = "logs", "Logs"
    TRACES = "traces", "Traces"
    KUBERNETES = "kubernetes", "Kubernetes"
    CHANGES = "changes", "Changes"


class EvidenceStatus(models.TextChoices):
    OK = "ok", "Collected"
    NO_DATA = "no_data", "No data"
    UNAVAILABLE = "unavailable", "Source unavailable"
    TIMED_OUT = "timed_out", "Timed out"
    NOT_CONFIGURED = "not_configured", "Not configured"


def query_digest(query: str) -> str:
    return hashlib.sha256(query.encode()).hexdigest()


class Evidence(models.Model):
    """One query's result, kept as a bounded snapshot so the review outlives telemetry retention."""

    run = models.ForeignKey(InvestigationRun, on_delete=models.CASCADE, related_name="evidence")
    kind = models.CharField(max_length=12, choices=EvidenceKind.choices)
    source = models.CharField(max_length=20)  # prometheus, loki, tempo, kubernetes, grafana, catalog
    service = models.CharField(max_length=63, blank=True)  # slug; "" = not about one service
    status = models.CharField(max_length=16, choices=EvidenceStatus.choices, default=EvidenceStatus.OK)
    query = models.TextField(max_length=10_000, blank=True)  # PromQL, LogQL, TraceQL, API path
    query_hash = models.CharField(max_length=64, editable=False)
    explore_url = models.URLField(max_length=4_000, blank=True)
    snapshot = models.JSONField(default=dict, blank=True)
    snapshot_bytes = models.PositiveIntegerField(default=0)
    score = models.FloatField(default=0.0)
    anomaly_start = models.DateTimeField(null=True, blank=True)
    finding = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["kind", "-score", "id"]
        constraints = [
            models.UniqueConstraint(fields=["run", "kind", "source", "service", "query_hash"],
                                    name="one_evidence_per_query"),
        ]

    def save(self, *args, **kwargs):
        self.query_hash = query_digest(self.query)
        super().save(*args, **kwargs)

    def __str__(self) -> str:
        return f"{self.kind}/{self.source} {self.service or '-'}: {self.finding[:60]}"


class HypothesisKind(models.TextChoices):
    DEPENDENCY_FAILURE = "dependency_failure", "Dependency failure"
    BAD_DEPLOY = "bad_deploy", "Bad deploy"
    RESOURCE_SATURATION = "resource_saturation", "Resource saturation"
    CRASH_LOOP = "crash_loop", "Crash loop"
    CODE_ERROR = "code_error", "Code-level errors"
    LATENCY = "latency", "Latency"
    EXTERNAL_DEPENDENCY = "external_dependency", "External dependency"


class HypothesisStatus(models.TextChoices):
    PROPOSED = "proposed", "Proposed"
    CONFIRMED = "confirmed", "Confirmed"
    REJECTED = "rejected", "Rejected"


class Hypothesis(models.Model):
    """A candidate root cause. One per (incident, kind, service): re-runs update it, never duplicate;
    a responder's confirmation or rejection survives re-runs."""

    incident = models.ForeignKey(Incident, on_delete=models.CASCADE, related_name="hypotheses")
    run = models.ForeignKey(InvestigationRun, null=True, on_delete=models.SET_NULL, related_name="hypotheses")
    kind = models.CharField(max_length=24, choices=HypothesisKind.choices)
    service = models.CharField(max_length=63)  # the suspected service (slug)
    services = models.JSONField(default=list, blank=True)  # every service it involves
    title = models.CharField(max_length=300)
    description = models.TextField(blank=True, max_length=5_000)
    confidence = models.FloatField(validators=[MinValueValidator(0.0), MaxValueValidator(1.0)])
    score = models.FloatField(default=0.0)  # the ranking's raw score
    rank = models.PositiveIntegerField(default=0)  # 1 = most likely among the not-rejected
    status = models.CharField(max_length=10, choices=HypothesisStatus.choices, default=HypothesisStatus.PROPOSED)
    decided_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    decided_at = models.DateTimeField(null=True, blank=True)
    decision_note = models.CharField(max_length=1_000, blank=True)
    evidence = models.ManyToManyField(Evidence, blank=True, related_name="hypotheses")
    next_step = models.TextField(blank=True, max_length=2_000)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["rank", "-confidence", "id"]
        verbose_name_plural = "hypotheses"
        constraints = [
            models.UniqueConstraint(fields=["incident", "kind", "service"], name="one_hypothesis_per_kind_service"),
            models.CheckConstraint(condition=Q(confidence__gte=0) & Q(confidence__lte=1),
                                   name="hypothesis_confidence_0_1"),
        ]

    def __str__(self) -> str:
        return f"{self.title} ({self.confidence:.2f}, {self.status})"


class ChangeKind(models.TextChoices):
    DEPLOY = "deploy", "Deploy"
    CONFIG = "config", "Configuration change"
    ROLLBACK = "rollback", "Rollback"
    FEATURE_FLAG = "feature_flag", "Feature flag"
    INFRASTRUCTURE = "infrastructure", "Infrastructure"


class ChangeSource(models.TextChoices):
    API = "api", "Recorded through the API"
    KUBERNETES = "kubernetes", "Kubernetes rollout"
    GRAFANA = "grafana", "Grafana annotation"


class Change(models.Model):
    """A deploy or configuration change: strong evidence when it lands shortly before an anomaly."""

    service = models.ForeignKey(Service, on_delete=models.CASCADE, related_name="changes")
    kind = models.CharField(max_length=16, choices=ChangeKind.choices, default=ChangeKind.DEPLOY)
    source = models.CharField(max_length=12, choices=ChangeSource.choices, default=ChangeSource.API)
    version = models.CharField(max_length=200, blank=True)
    description = models.TextField(blank=True, max_length=5_000)
    author = models.CharField(max_length=200, blank=True)  # who deployed (CI user, person)
    url = models.URLField(max_length=2_000, blank=True)  # CI run, pull request, release
    occurred_at = models.DateTimeField(default=timezone.now)
    # Set by CI/CD or derived from the source (rollout uid, annotation id): a retried POST is one change.
    external_id = models.CharField(max_length=200, null=True, blank=True)
    recorded_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-occurred_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["source", "external_id"], condition=Q(external_id__isnull=False),
                                    name="one_change_per_external_id"),
        ]
        indexes = [models.Index(fields=["service", "-occurred_at"])]

    def __str__(self) -> str:
        return f"{self.kind} {self.service.slug} {self.version}".strip()


class Review(models.Model):
    """The post-incident review: generated sections, and responders' edits that override them."""

    incident = models.OneToOneField(Incident, on_delete=models.CASCADE, related_name="review")
    generated = models.JSONField(default=dict, blank=True)  # section name -> Markdown text / data
    edited = models.JSONField(default=dict, blank=True)  # section name -> Markdown text
    generated_at = models.DateTimeField(null=True, blank=True)
    edited_at = models.DateTimeField(null=True, blank=True)
    edited_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)

    def __str__(self) -> str:
        return f"Review of {self.incident.key}"

    def section(self, name: str):
        """A responder's edit wins over the generated text."""
        return self.edited.get(name, self.generated.get(name, ""))
