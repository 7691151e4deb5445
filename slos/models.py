"""Service level objectives, their computed state and history, and each incident's budget impact.

An `SLO` holds its definition (service, SLI, objective, rolling window) and the latest state the
beat cycle computed (`slos.services.recompute_slos`): SLI, error budget, burn rates, status.
`SLOSnapshot` is the history behind the burndown chart. `IncidentBudgetImpact` is the budget an
incident consumed (live while open, final on resolution). Writes go through `slos.services`.
"""
from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import models
from django.utils.text import slugify

from incidents.models import Incident, Service

from . import promql, windows


class SLIKind(models.TextChoices):
    AVAILABILITY = "availability", "Availability (good / total requests)"
    LATENCY = "latency", "Latency (requests under a threshold / total, from histogram buckets)"
    CUSTOM = "custom", "Custom (good and total PromQL)"


class SLOStatus(models.TextChoices):
    HEALTHY = "healthy", "Healthy"
    WARNING = "warning", "Warning"
    CRITICAL = "critical", "Critical"
    EXHAUSTED = "exhausted", "Budget exhausted"
    NO_DATA = "no_data", "No data"
    UNKNOWN = "unknown", "Not computed yet"


DEFAULT_METRICS = {
    SLIKind.AVAILABILITY: "http_requests_total",
    SLIKind.LATENCY: "http_request_duration_seconds",
}
DEFAULT_ERROR_MATCHER = 'code=~"5.."'
MAX_WINDOW_DAYS = 90


class SLOQuerySet(models.QuerySet):
    def enabled(self):
        return self.filter(enabled=True)

    def for_services(self, service_ids):
        return self.filter(service_id__in=service_ids)


class SLO(models.Model):
    service = models.ForeignKey(Service, on_delete=models.CASCADE, related_name="slos")
    name = models.CharField(max_length=200)
    slug = models.SlugField(max_length=120, unique=True, blank=True,
                            help_text="stable identifier (OpenSLO metadata.name); generated from service and name")
    sli_kind = models.CharField(max_length=16, choices=SLIKind.choices, default=SLIKind.AVAILABILITY)
    selector = models.CharField(
        max_length=500, blank=True,
        help_text='availability/latency: label matchers of the service\'s series, e.g. job="shop",service="checkout"')
    metric = models.CharField(
        max_length=200, blank=True,
        help_text="availability: request counter (default http_requests_total); "
                  "latency: histogram name without _bucket (default http_request_duration_seconds)")
    error_matcher = models.CharField(max_length=200, blank=True, default=DEFAULT_ERROR_MATCHER,
                                     help_text='availability: the matcher of failed requests, e.g. code=~"5.."')
    latency_threshold_seconds = models.FloatField(null=True, blank=True,
                                                  help_text="latency: a request is good under this (a bucket's le)")
    good_query = models.TextField(blank=True, help_text="custom: PromQL for good events over $window, "
                                                        "e.g. sum(increase(jobs_ok_total[$window]))")
    total_query = models.TextField(blank=True, help_text="custom: PromQL for all events over $window")
    objective = models.FloatField(help_text="percent of good events, strictly between 0 and 100, e.g. 99.9")
    window_days = models.PositiveSmallIntegerField(default=30, help_text="rolling window in days (1–90)")
    owner = models.CharField(max_length=120, blank=True)
    description = models.TextField(blank=True)
    labels = models.JSONField(default=dict, blank=True)
    severity_policy = models.JSONField(
        default=dict, blank=True,
        help_text="error-budget policy: alert row → incident severity, e.g. {\"page_fast\": \"critical\"}; "
                  "empty = SLO_SEVERITY_POLICY")
    enabled = models.BooleanField(default=True)

    # Latest computed state (written by the beat cycle only).
    status = models.CharField(max_length=10, choices=SLOStatus.choices, default=SLOStatus.UNKNOWN)
    sli = models.FloatField(null=True, blank=True, help_text="good / total over the window (ratio)")
    good_events = models.FloatField(null=True, blank=True)
    total_events = models.FloatField(null=True, blank=True)
    budget_remaining = models.FloatField(null=True, blank=True, help_text="fraction of the budget left (≤ 0: exhausted)")
    burn_rates = models.JSONField(default=dict, blank=True, help_text="window → burn rate (null: no data)")
    alert_rows = models.JSONField(default=list, blank=True, help_text="burn-alert rows whose condition holds")
    forecast_seconds = models.FloatField(null=True, blank=True, help_text="time to exhaustion at the 1h burn")
    stale = models.BooleanField(default=False, help_text="the last computation failed; values are the last good ones")
    last_error = models.TextField(blank=True)
    computed_at = models.DateTimeField(null=True, blank=True, help_text="last successful computation")
    attempted_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = SLOQuerySet.as_manager()

    class Meta:
        ordering = ["service__slug", "name"]
        verbose_name = "SLO"
        constraints = [models.UniqueConstraint(fields=["service", "name"], name="slo_unique_name_per_service")]

    def __str__(self) -> str:
        return f"{self.service.slug if self.service_id else '?'} / {self.name}"

    # -- derived --------------------------------------------------------------------------------
    @property
    def objective_ratio(self) -> float:
        return self.objective / 100.0

    @property
    def error_budget(self) -> float:
        """Allowed fraction of bad events: 1 − objective."""
        return 1.0 - self.objective_ratio

    @property
    def window_seconds(self) -> int:
        return int(self.window_days) * 86400

    @property
    def window(self) -> str:
        return f"{self.window_days}d"

    @property
    def budget_minutes(self) -> float:
        """The budget as minutes of full outage over the window (43.2 for 99.9 % over 30 days)."""
        return self.error_budget * self.window_seconds / 60.0

    @property
    def metric_name(self) -> str:
        return self.metric or DEFAULT_METRICS.get(self.sli_kind, "")

    def burn_thresholds(self) -> dict[str, float]:
        return {row.name: windows.burn_threshold(row, self.window_days) for row in windows.ALERT_ROWS}

    def generated_slug(self) -> str:
        base = slugify(f"{self.service.slug}-{self.name}")[:110].strip("-") or "slo"
        return base

    def clean(self):
        if not self.slug and self.service_id and self.name:
            self.slug = self.generated_slug()
        errors: dict[str, str] = {}
        if self.objective is None or not (0 < self.objective < 100):
            errors["objective"] = ("the objective is a percentage strictly between 0 and 100 "
                                   f"(e.g. 99.9); got {self.objective!r}")
        if self.window_days is None or not (1 <= self.window_days <= MAX_WINDOW_DAYS):
            errors["window_days"] = f"the rolling window is a whole number of days from 1 to {MAX_WINDOW_DAYS} (e.g. 7, 28 or 30)"
        if self.sli_kind in (SLIKind.AVAILABILITY, SLIKind.LATENCY):
            if not self.selector.strip():
                errors["selector"] = 'label matchers are required, e.g. job="shop",service="checkout"'
            else:
                try:
                    promql.parse_selector(self.selector)
                except ValueError as exc:
                    errors["selector"] = str(exc)
            if self.metric and not promql.METRIC_NAME.fullmatch(self.metric):
                errors["metric"] = f"{self.metric!r} is not a metric name"
        if self.sli_kind == SLIKind.AVAILABILITY:
            try:
                if len(promql.parse_selector(self.error_matcher or "")) != 1:
                    raise ValueError("exactly one matcher, e.g. code=~\"5..\"")
            except ValueError as exc:
                errors["error_matcher"] = f"the failed-request matcher is invalid: {exc}"
        if self.sli_kind == SLIKind.LATENCY:
            if self.latency_threshold_seconds is None or not self.latency_threshold_seconds > 0:
                errors["latency_threshold_seconds"] = "a latency SLO needs a threshold in seconds above 0 (a bucket's le)"
        if self.sli_kind == SLIKind.CUSTOM:
            for field in ("good_query", "total_query"):
                text = getattr(self, field).strip()
                if not text:
                    errors[field] = "a custom SLO needs both a good and a total query"
                elif "$window" not in text:
                    errors[field] = "use $window as the range of the query, e.g. sum(increase(x_total[$window]))"
        if self.severity_policy:
            try:
                windows.parse_policy(self.severity_policy)
            except ValueError as exc:
                errors["severity_policy"] = str(exc)
        if not isinstance(self.labels, dict) or not all(isinstance(v, str) for v in self.labels.values()):
            errors["labels"] = "labels are a mapping of names to string values"
        if errors:
            raise ValidationError(errors)


class SLOSnapshot(models.Model):
    """One point of an SLO's history (for the burndown chart)."""

    slo = models.ForeignKey(SLO, on_delete=models.CASCADE, related_name="snapshots")
    at = models.DateTimeField()
    status = models.CharField(max_length=10, choices=SLOStatus.choices)
    sli = models.FloatField(null=True)
    good_events = models.FloatField(null=True)
    total_events = models.FloatField(null=True)
    budget_remaining = models.FloatField(null=True)
    burn_rates = models.JSONField(default=dict)

    class Meta:
        ordering = ["slo", "at"]
        indexes = [models.Index(fields=["slo", "at"])]


class IncidentBudgetImpact(models.Model):
    """The error budget one SLO lost between an incident's start and its resolution (or now)."""

    incident = models.ForeignKey(Incident, on_delete=models.CASCADE, related_name="budget_impacts")
    slo = models.ForeignKey(SLO, on_delete=models.CASCADE, related_name="incident_impacts")
    start = models.DateTimeField()
    end = models.DateTimeField()
    bad_events = models.FloatField(null=True)
    total_events = models.FloatField(null=True)
    consumed = models.FloatField(null=True, help_text="fraction of the window's error budget")
    consumed_minutes = models.FloatField(null=True, help_text="the same, as minutes of full outage")
    final = models.BooleanField(default=False, help_text="computed at resolution (kept for the review)")
    error = models.TextField(blank=True)
    computed_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-start"]
        constraints = [models.UniqueConstraint(fields=["incident", "slo"], name="one_budget_impact_per_incident_slo")]

    def __str__(self) -> str:
        return f"{self.incident_id} × {self.slo_id}: {self.consumed}"

    @property
    def consumed_pct(self) -> str | None:
        return None if self.consumed is None else f"{self.consumed * 100:.2f}"
