"""Runbooks (as code), the actions they propose, the audit log and the global switches.

Writes go through `remediation.services`. The audit log is append-only in the database itself
(a trigger, migration 0002), not only here: its rows carry no foreign keys, so that deleting an
incident, an action or a user never tries to delete or null out audit history.
"""
from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from incidents.models import Incident


class Runbook(models.Model):
    """A runbook: when it applies (`match`) and what to do, step by step (`steps`).

    Loaded from runbooks/*.yaml (`manage.py load_runbooks`) and editable in the admin; both go
    through `remediation.runbooks.validate_runbook`, so the shape below is always valid.
      match: {"services": [...], "labels": {...}, "rules": [...], "hypothesis_kinds": [...],
              "min_confidence": 0.0..1.0}
      steps: [{"name", "action", "params", "requires_approval", "automatic", "auto_min_confidence",
               "verify_seconds"}]
    """

    name = models.SlugField(max_length=100, unique=True)
    title = models.CharField(max_length=200)
    description = models.TextField(blank=True, max_length=5_000)
    enabled = models.BooleanField(default=True)
    match = models.JSONField(default=dict, blank=True)
    steps = models.JSONField(default=list)
    source_file = models.CharField(max_length=500, blank=True, help_text="the YAML file it was loaded from")
    source_line = models.PositiveIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def step(self, index: int) -> dict | None:
        return self.steps[index] if 0 <= index < len(self.steps) else None


class ActionStatus(models.TextChoices):
    PROPOSED = "proposed", "Proposed"
    APPROVED = "approved", "Approved"
    EXECUTING = "executing", "Executing"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"


ACTIVE_STATUSES = (ActionStatus.PROPOSED, ActionStatus.APPROVED, ActionStatus.EXECUTING)
FINISHED_STATUSES = (ActionStatus.SUCCEEDED, ActionStatus.FAILED, ActionStatus.CANCELLED)


class Verification(models.TextChoices):
    NONE = "none", "Not verified"
    PENDING = "pending", "Watching the signal"
    EFFECTIVE = "effective", "Effective"
    NOT_EFFECTIVE = "not_effective", "Not effective"
    SKIPPED = "skipped", "No signal to watch"


class ActionQuerySet(models.QuerySet):
    def active(self):
        return self.filter(status__in=ACTIVE_STATUSES)

    def awaiting_verification(self):
        return self.filter(status=ActionStatus.SUCCEEDED, verification=Verification.PENDING)


class Action(models.Model):
    """One runbook step for one incident: proposed → approved → executing → succeeded | failed,
    or cancelled before it runs; then verified effective or not against the incident's signal."""

    incident = models.ForeignKey(Incident, on_delete=models.CASCADE, related_name="remediation_actions")
    runbook = models.ForeignKey(Runbook, null=True, blank=True, on_delete=models.SET_NULL, related_name="actions")
    runbook_name = models.CharField(max_length=100)  # kept when the runbook is deleted
    step_index = models.PositiveIntegerField(default=0)
    step_name = models.CharField(max_length=100)
    # Incidents reopen: a new round may propose the same step again.
    round = models.PositiveIntegerField(default=0)
    kind = models.CharField(max_length=40)  # remediation.actions registry name
    target = models.CharField(max_length=300)  # what it changes, e.g. "deployment shop/checkout"
    params = models.JSONField(default=dict, blank=True)
    dry_run = models.JSONField(default=dict, blank=True)  # what would change, before it ran
    status = models.CharField(max_length=10, choices=ActionStatus.choices, default=ActionStatus.PROPOSED)
    requires_approval = models.BooleanField(default=True)
    automatic = models.BooleanField(default=False, help_text="approved by policy, not by a person")
    hypothesis = models.ForeignKey("investigation.Hypothesis", null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="remediation_actions")
    confidence = models.FloatField(null=True, blank=True, help_text="the hypothesis' confidence when proposed")
    reason = models.CharField(max_length=500, blank=True)  # why it was proposed
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                     related_name="+")
    approved_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                    related_name="+")
    cancelled_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                     related_name="+")
    result = models.JSONField(default=dict, blank=True)
    error = models.TextField(blank=True, max_length=5_000)
    verification = models.CharField(max_length=14, choices=Verification.choices, default=Verification.NONE)
    verification_detail = models.JSONField(default=dict, blank=True)
    verify_seconds = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(default=timezone.now)
    requested_at = models.DateTimeField(null=True, blank=True)
    approved_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    verify_until = models.DateTimeField(null=True, blank=True)
    verified_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = ActionQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            # A hypothesis updated ten times proposes a step once.
            models.UniqueConstraint(fields=["incident", "runbook_name", "step_index", "round"],
                                    name="one_action_per_incident_step_round"),
        ]
        indexes = [
            models.Index(fields=["kind", "target", "started_at"]),
            models.Index(fields=["verification"], condition=Q(verification="pending"), name="action_verifying"),
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.target} ({self.status})"

    @property
    def is_active(self) -> bool:
        return self.status in ACTIVE_STATUSES


class AuditEvent(models.TextChoices):
    PROPOSED = "proposed", "Proposed"
    REQUESTED = "requested", "Requested"
    APPROVED = "approved", "Approved"
    EXECUTING = "executing", "Executing"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"
    REFUSED = "refused", "Refused by a guardrail"
    VERIFIED = "verified", "Verified"
    KILL_SWITCH = "kill_switch", "Kill switch changed"
    BREAKER_RESET = "breaker_reset", "Circuit breaker reset"


class AuditRecord(models.Model):
    """Who did what to which target, when, with which parameters, dry-run diff and result.

    Append-only: a trigger refuses UPDATE and DELETE (migration 0002). No foreign keys on
    purpose: history outlives the rows it talks about."""

    at = models.DateTimeField(default=timezone.now, db_index=True)
    actor = models.CharField(max_length=150)  # a username, or "system" / "policy"
    actor_id = models.IntegerField(null=True, blank=True)
    event = models.CharField(max_length=14, choices=AuditEvent.choices)
    action_id = models.IntegerField(null=True, blank=True, db_index=True)
    incident_id = models.IntegerField(null=True, blank=True, db_index=True)
    kind = models.CharField(max_length=40, blank=True)
    target = models.CharField(max_length=300, blank=True)
    parameters = models.JSONField(default=dict, blank=True)
    dry_run = models.JSONField(default=dict, blank=True)
    result = models.JSONField(default=dict, blank=True)
    message = models.CharField(max_length=1_000, blank=True)

    class Meta:
        ordering = ["-at", "-id"]

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M:%S} {self.actor} {self.event} {self.kind} {self.target}"


class Switchboard(models.Model):
    """The one row of global controls: the kill switch (admin toggle; the REMEDIATION_KILL_SWITCH
    setting engages it too) and when the circuit breaker was last reset."""

    id = models.PositiveSmallIntegerField(primary_key=True, default=1, editable=False)
    kill_switch = models.BooleanField(default=False, help_text="stop every remediation action")
    kill_switch_reason = models.CharField(max_length=500, blank=True)
    breaker_reset_at = models.DateTimeField(null=True, blank=True)
    changed_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")
    changed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = "remediation switchboard"
        constraints = [models.CheckConstraint(condition=Q(id=1), name="one_switchboard")]

    def __str__(self) -> str:
        return "Kill switch ON" if self.kill_switch else "Kill switch off"

    @classmethod
    def load(cls) -> "Switchboard":
        return cls.objects.get_or_create(id=1)[0]

    @classmethod
    def current(cls) -> "Switchboard":
        """The row, or the defaults when nobody has changed anything yet (reads never write)."""
        return cls.objects.select_related("changed_by").filter(id=1).first() or cls()
