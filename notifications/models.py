"""Who hears about an incident: destinations, routes, quiet hours, escalation, and the delivery log.

Writes go through `notifications.services` (and `notifications.escalation` for the schedule); these
classes hold configuration, the durable schedule and the constraints that keep a retried task from
sending anything twice: one delivery per (incident, destination, event key), one scheduled
escalation per (incident, step).
"""
from __future__ import annotations

import os
import zoneinfo

from django.core.exceptions import ValidationError
from django.core.validators import RegexValidator
from django.db import models
from django.db.models import Q
from django.utils import timezone

from incidents.models import Incident, Service, Severity


class DestinationKind(models.TextChoices):
    EMAIL = "email", "Email"
    SLACK = "slack", "Slack (incoming webhook)"
    TEAMS = "teams", "Microsoft Teams (incoming webhook)"
    PAGERDUTY = "pagerduty", "PagerDuty (Events API v2)"
    WEBHOOK = "webhook", "Generic webhook (HMAC-signed JSON)"


env_name_validator = RegexValidator(r"^[A-Z_][A-Z0-9_]{0,99}$", "An environment variable name: A-Z, 0-9 and _.")


def mask(value: str) -> str:
    """What the admin and the API show of a secret: never the whole of it."""
    if not value:
        return ""
    if value.startswith(("http://", "https://")):
        scheme, _, rest = value.partition("://")
        return f"{scheme}://{rest.split('/', 1)[0]}/…"
    return "…" + value[-4:] if len(value) >= 12 else "…"


class Destination(models.Model):
    """Where notifications go. Secrets (Slack/Teams webhook URL, PagerDuty routing key, webhook HMAC
    key) come from `secret_env` (an environment variable, preferred) or `secret` (set in the admin,
    write-only); either way they are never logged and never shown back in full."""

    name = models.CharField(max_length=100, unique=True)
    kind = models.CharField(max_length=16, choices=DestinationKind.choices)
    enabled = models.BooleanField(default=True)
    # Generic webhook: the target. PagerDuty: the Events API endpoint (blank = the public one).
    url = models.CharField(max_length=2000, blank=True)
    # Email: comma-separated addresses; each gets its own message (and its own acknowledge link).
    recipients = models.CharField(max_length=2000, blank=True)
    secret = models.CharField(max_length=2000, blank=True)
    secret_env = models.CharField(max_length=100, blank=True, validators=[env_name_validator])
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(condition=Q(kind__in=DestinationKind.values), name="destination_known_kind"),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.kind})"

    def resolve_secret(self) -> str:
        """The secret in force: the environment variable when one is named, else the stored one."""
        if self.secret_env:
            return os.environ.get(self.secret_env, "")
        return self.secret

    @property
    def secret_hint(self) -> str:
        if self.secret_env:
            return f"${self.secret_env}" + ("" if os.environ.get(self.secret_env) else " (not set)")
        return mask(self.secret)

    @property
    def recipient_list(self) -> list[str]:
        return [r.strip() for r in self.recipients.split(",") if r.strip()]

    def clean(self) -> None:
        from .channels import registry  # the channel modules validate their own configuration

        channel = registry.get(self.kind)
        if channel is None:
            raise ValidationError({"kind": f"unknown destination kind {self.kind!r}; expected one of "
                                           f"{', '.join(DestinationKind.values)}"})
        errors = channel.validate(self)
        if errors:
            raise ValidationError(errors)


class Route(models.Model):
    """Incidents matching every non-empty criterion go to the route's destinations. Every matching
    route applies (destinations are merged) unless one with `stop` matches first; when none
    matches, the default routes apply."""

    name = models.CharField(max_length=100, unique=True)
    position = models.PositiveIntegerField(default=100, help_text="Routes are evaluated in this order.")
    enabled = models.BooleanField(default=True)
    is_default = models.BooleanField(default=False, help_text="Used when no other route matches.")
    services = models.ManyToManyField(Service, blank=True, related_name="notification_routes",
                                      help_text="Any of these services is affected (empty = any service).")
    teams = models.JSONField(default=list, blank=True, help_text='Owner teams, e.g. ["payments"] (empty = any).')
    severities = models.JSONField(default=list, blank=True, help_text='e.g. ["critical", "high"] (empty = any).')
    labels = models.JSONField(default=dict, blank=True,
                              help_text='Every key must match the incident\'s labels; "*" = present.')
    destinations = models.ManyToManyField(Destination, related_name="routes")
    stop = models.BooleanField(default=False, help_text="Do not evaluate later routes when this one matches.")

    class Meta:
        ordering = ["position", "id"]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        errors = {}
        if not isinstance(self.teams, list) or not all(isinstance(t, str) for t in self.teams):
            errors["teams"] = "a list of team names"
        if not isinstance(self.severities, list) or set(self.severities) - set(Severity.values):
            errors["severities"] = f"a list of: {', '.join(Severity.values)}"
        if not isinstance(self.labels, dict) or not all(isinstance(v, str) for v in self.labels.values()):
            errors["labels"] = "an object of label name → value (strings)"
        if errors:
            raise ValidationError(errors)


class QuietHours(models.Model):
    """A team's quiet hours: notifications for its incidents at or below `max_severity` are held
    until the quiet hours end (and dropped if the incident resolved meanwhile)."""

    team = models.CharField(max_length=120, unique=True)
    start = models.TimeField()
    end = models.TimeField(help_text="May be earlier than start (quiet overnight).")
    timezone = models.CharField(max_length=64, default="UTC")
    max_severity = models.CharField(max_length=10, choices=Severity.choices, default=Severity.LOW)

    class Meta:
        ordering = ["team"]
        verbose_name_plural = "quiet hours"

    def __str__(self) -> str:
        return f"{self.team}: {self.start:%H:%M}–{self.end:%H:%M} {self.timezone}"

    def clean(self) -> None:
        try:
            zoneinfo.ZoneInfo(self.timezone)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise ValidationError({"timezone": f"unknown time zone {self.timezone!r}"}) from None
        if self.start == self.end:
            raise ValidationError({"end": "must differ from start"})


class EscalationPolicy(models.Model):
    """Per team (blank team = the default policy): if nobody acknowledges, each step notifies its
    destinations `delay_seconds` after the previous level."""

    name = models.CharField(max_length=100, unique=True)
    team = models.CharField(max_length=120, blank=True, help_text="Blank = incidents of teams without a policy.")
    enabled = models.BooleanField(default=True)

    class Meta:
        ordering = ["team", "name"]
        verbose_name_plural = "escalation policies"
        constraints = [models.UniqueConstraint(fields=["team"], name="one_escalation_policy_per_team")]

    def __str__(self) -> str:
        return self.name


class EscalationStep(models.Model):
    policy = models.ForeignKey(EscalationPolicy, on_delete=models.CASCADE, related_name="steps")
    position = models.PositiveSmallIntegerField(help_text="Level 1, 2, …")
    delay_seconds = models.PositiveIntegerField(help_text="After the previous level (level 1: after the first notification).")
    destinations = models.ManyToManyField(Destination, related_name="escalation_steps")

    class Meta:
        ordering = ["policy", "position"]
        constraints = [
            models.UniqueConstraint(fields=["policy", "position"], name="one_step_per_position"),
            models.CheckConstraint(condition=Q(position__gte=1), name="escalation_step_position_1"),
            models.CheckConstraint(condition=Q(delay_seconds__gte=1), name="escalation_step_delay_positive"),
        ]

    def __str__(self) -> str:
        return f"{self.policy.name} level {self.position} (+{self.delay_seconds}s)"


class EscalationState(models.TextChoices):
    PENDING = "pending", "Pending"
    FIRED = "fired", "Fired"
    CANCELLED = "cancelled", "Cancelled"


class ScheduledEscalation(models.Model):
    """The durable escalation schedule: a row per (incident, step), claimed by the beat task with
    SELECT … FOR UPDATE SKIP LOCKED, so a restart loses nothing and no level fires twice."""

    incident = models.ForeignKey(Incident, on_delete=models.CASCADE, related_name="scheduled_escalations")
    step = models.ForeignKey(EscalationStep, on_delete=models.CASCADE, related_name="scheduled")
    level = models.PositiveSmallIntegerField()
    due_at = models.DateTimeField()
    status = models.CharField(max_length=10, choices=EscalationState.choices, default=EscalationState.PENDING)
    finished_at = models.DateTimeField(null=True, blank=True)
    reason = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["due_at", "id"]
        constraints = [models.UniqueConstraint(fields=["incident", "step"], name="one_escalation_per_incident_step")]
        indexes = [models.Index(fields=["status", "due_at"], name="escalation_due")]

    def __str__(self) -> str:
        return f"{self.incident.key} level {self.level} due {self.due_at:%H:%M:%S} ({self.status})"


class NotificationEvent(models.TextChoices):
    OPENED = "opened", "Opened"
    ESCALATION = "escalation", "Escalation"
    ACKNOWLEDGED = "acknowledged", "Acknowledged"
    STATUS = "status", "Status change"
    HYPOTHESIS = "hypothesis", "New top hypothesis"
    REOPENED = "reopened", "Reopened"
    RESOLVED = "resolved", "Resolved"


class DeliveryStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    HELD = "held", "Held (quiet hours)"
    SENDING = "sending", "Sending"
    RETRYING = "retrying", "Retrying"
    DELIVERED = "delivered", "Delivered"
    FAILED = "failed", "Failed"
    SUPPRESSED = "suppressed", "Not sent"


FINAL_STATUSES = (DeliveryStatus.DELIVERED, DeliveryStatus.FAILED, DeliveryStatus.SUPPRESSED)


class Delivery(models.Model):
    """One notification to one destination, with its attempts. The log of an incident's
    notifications; unique per (incident, destination, event key) so nothing is sent twice."""

    incident = models.ForeignKey(Incident, on_delete=models.CASCADE, related_name="notification_deliveries")
    destination = models.ForeignKey(Destination, null=True, on_delete=models.SET_NULL, related_name="deliveries")
    destination_name = models.CharField(max_length=100)  # kept when the destination is deleted
    destination_kind = models.CharField(max_length=16, choices=DestinationKind.choices)
    event = models.CharField(max_length=16, choices=NotificationEvent.choices)
    # "opened", "escalation:2", "status:<timeline id>", "hypothesis:<id>", "resolved:<reopen count>"…
    event_key = models.CharField(max_length=120)
    level = models.PositiveSmallIntegerField(default=0)  # 0 = routing, n = escalation level n
    status = models.CharField(max_length=10, choices=DeliveryStatus.choices, default=DeliveryStatus.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    claimed_at = models.DateTimeField(null=True, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    response_code = models.PositiveSmallIntegerField(null=True, blank=True)
    last_error = models.CharField(max_length=1000, blank=True)
    # Attempts (time, outcome), the email Message-ID, PagerDuty's answer … (never a secret).
    detail = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["created_at", "id"]
        verbose_name_plural = "deliveries"
        constraints = [
            models.UniqueConstraint(fields=["incident", "destination", "event_key"], name="one_delivery_per_event"),
        ]
        indexes = [
            models.Index(fields=["status", "next_attempt_at"], name="delivery_due"),
            models.Index(fields=["incident", "created_at"], name="delivery_incident"),
        ]

    def __str__(self) -> str:
        return f"{self.incident.key} → {self.destination_name} ({self.event_key}, {self.status})"

    @property
    def is_final(self) -> bool:
        return self.status in FINAL_STATUSES
