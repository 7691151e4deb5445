"""Writes of remediation: propose from runbooks, request, approve, cancel, execute, verify.

Every transition happens in one short transaction that also writes the audit record, appends a
`remediation` entry to the incident's timeline (through incidents.services, the only writer of
incidents) and publishes `remediation.updated` after commit. Execution itself runs outside any
transaction (it talks to Kubernetes or a webhook), in a Celery task.

    proposed ──request──▶ (requested) ──approve (another person)──▶ approved ──▶ executing ──▶ succeeded | failed
        │ automatic policy ─────────────────────────────────────────▲                         │
        └──cancel──▶ cancelled  (also: refused by a guardrail at execution)                    ▼
                                                                    verification: effective | not effective → next step
"""
from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from detection.models import Alert
from incidents import events
from incidents import services as incident_services
from incidents.errors import InvalidTransition
from incidents.models import EventKind, Incident, Service
from investigation.models import Hypothesis, HypothesisStatus

from . import actions, guardrails, runbooks, tasks
from .models import (
    ActionStatus,
    AuditEvent,
    AuditRecord,
    Runbook,
    Switchboard,
    Verification,
)
from .models import Action as ActionRow

log = logging.getLogger(__name__)
SYSTEM = "remediation"
POLICY = "policy"


# -- events, audit, timeline -------------------------------------------------------------------------

def action_event_data(action: ActionRow) -> dict[str, Any]:
    return {"incident": action.incident_id, "action": action.pk, "status": action.status, "kind": action.kind,
            "target": action.target, "verification": action.verification, "runbook": action.runbook_name,
            "step": action.step_name}


def _actor(user) -> tuple[str, int | None]:
    if user is not None and getattr(user, "is_authenticated", False):
        return user.get_username(), user.pk
    return SYSTEM, None


def audit(*, event: str, action: ActionRow | None = None, user=None, actor: str | None = None, message: str = "",
          result: dict | None = None, **fields: Any) -> AuditRecord:
    name, user_id = _actor(user)
    record = AuditRecord(
        event=event, actor=actor or name, actor_id=user_id, message=message[:1000], result=result or {},
        action_id=action.pk if action else None, incident_id=action.incident_id if action else None,
        kind=action.kind if action else "", target=action.target if action else "",
        parameters=action.params if action else {}, dry_run=action.dry_run if action else {},
    )
    for key, value in fields.items():
        setattr(record, key, value)
    record.save(force_insert=True)
    return record


def _record(action: ActionRow, event: str, message: str, *, user=None, actor: str | None = None,
            result: dict | None = None) -> None:
    """Audit + timeline + live event for one transition (inside the caller's transaction)."""
    audit(event=event, action=action, user=user, actor=actor, message=message, result=result)
    incident_services.append_timeline_event(
        incident=action.incident, kind=EventKind.REMEDIATION, message=message, user=user,
        actor=actor or (None if user is not None else SYSTEM),
        data={"action": action.pk, "event": event, "status": action.status, "kind": action.kind,
              "target": action.target, "runbook": action.runbook_name, "step": action.step_name,
              "verification": action.verification, **({"result": result} if result else {})})
    events.publish("remediation.updated", action_event_data(action), incident_id=action.incident_id)


def _locked(action: ActionRow) -> ActionRow:
    return ActionRow.objects.select_for_update(of=("self",)).select_related("incident", "runbook").get(pk=action.pk)


def _label(action: ActionRow) -> str:
    return f"{action.kind} on {action.target} ({action.runbook_name}/{action.step_name})"


# -- proposing -----------------------------------------------------------------------------------------

def _variables(incident: Incident, service_slug: str) -> dict[str, str]:
    service = Service.objects.filter(slug=service_slug).first()
    labels = (service.labels if service else {}) or {}
    namespace = labels.get("namespace") or labels.get("kubernetes_namespace") or settings.REMEDIATION_DEFAULT_NAMESPACE
    return {"service": service_slug, "namespace": str(namespace), "incident": str(incident.pk)}


def preview(kind_name: str, params: dict) -> dict:
    """The dry run, or what stopped it (a dry run that fails is shown, not hidden)."""
    kind = actions.get(kind_name)
    try:
        return kind.dry_run(params)
    except actions.ActionError as exc:
        return {"summary": f"Dry run failed: {exc}", "changes": [], "error": str(exc)}


def _build(runbook: Runbook, step_index: int, incident: Incident, service_slug: str) -> dict:
    step = runbook.step(step_index)
    kind = actions.get(step["action"])
    if kind is None:
        raise ValidationError({"action": f"unknown action {step['action']!r}"})
    try:
        params = kind.clean(runbooks.render_params(step.get("params") or {}, _variables(incident, service_slug)))
    except (actions.ParamError, KeyError, ValueError) as exc:
        raise ValidationError({"params": f"runbook {runbook.name} step {step['name']}: {exc}"}) from None
    return {"kind": kind.name, "target": kind.target(params), "params": params, "step_name": step["name"],
            "requires_approval": step.get("requires_approval", kind.changes_production),
            "verify_seconds": step.get("verify_seconds") or settings.REMEDIATION_VERIFY_SECONDS}


def _incident_facts(incident: Incident) -> dict:
    services = set(incident.affected_services.values_list("slug", flat=True))
    primary = incident.primary_service.slug if incident.primary_service_id else None
    rules = set(Alert.objects.filter(incident=incident, rule__isnull=False).values_list("rule__name", flat=True))
    hypotheses = list(Hypothesis.objects.filter(incident=incident).exclude(status=HypothesisStatus.REJECTED)
                      .order_by("rank", "-confidence", "id"))
    return {"services": services | ({primary} if primary else set()), "primary": primary,
            "labels": incident.labels or {}, "rules": rules, "hypotheses": hypotheses}


def candidate_matches(runbook: Runbook, facts: dict, incident: Incident):
    """Every candidate the runbook matches, best first: hypotheses by rank, then (for runbooks
    that ask nothing of hypotheses) the incident's primary service."""
    common = {"incident": incident, "services": facts["services"], "primary": facts["primary"],
              "labels": facts["labels"], "rules": facts["rules"]}
    for hypothesis in facts["hypotheses"]:
        found = runbooks.match_runbook(runbook, hypothesis=hypothesis, **common)
        if found:
            yield found
    found = runbooks.match_runbook(runbook, hypothesis=None, **common)
    if found:
        yield found


def propose_for_incident(*, incident_id: int) -> list[ActionRow]:
    """Match every enabled runbook against the incident and propose (or re-target) its first step.

    The first matching candidate whose dry run would change something wins: recovering a service
    that has nothing wrong with it, or scaling to the replicas it already has, is not a
    recommendation. Idempotent: one action per (incident, runbook, step, round). A proposal nobody
    has touched yet follows the best candidate (a re-run that changes the suspect re-targets it);
    once someone requested it, or it ran, it stays as it is.
    """
    incident = Incident.objects.select_related("primary_service").filter(pk=incident_id).first()
    if incident is None or not incident.is_active:
        return []
    facts = _incident_facts(incident)
    touched = []
    for runbook in Runbook.objects.filter(enabled=True):
        for found in candidate_matches(runbook, facts, incident):
            planned = _plan(runbook, 0, incident, found)
            if planned is None or planned[1].get("noop"):
                continue
            action = _propose_step(incident=incident, runbook=runbook, step_index=0, match=found, planned=planned)
            if action is not None:
                touched.append(action)
            break
    return touched


def _plan(runbook: Runbook, step_index: int, incident: Incident, match: runbooks.Match) -> tuple[dict, dict] | None:
    """The step's rendered spec and its dry run (outside any transaction: it may call the target)."""
    try:
        spec = _build(runbook, step_index, incident, match.service)
    except ValidationError as exc:
        log.warning("runbook %s cannot be proposed for %s: %s", runbook.name, incident.key, exc)
        return None
    return spec, preview(spec["kind"], spec["params"])


def _propose_step(*, incident: Incident, runbook: Runbook, step_index: int, match: runbooks.Match,
                  reason: str | None = None, planned: tuple[dict, dict] | None = None) -> ActionRow | None:
    planned = planned or _plan(runbook, step_index, incident, match)
    if planned is None:
        return None
    spec, dry_run = planned
    round_ = incident.reopened_count
    reason = reason or match.reason
    with transaction.atomic():
        existing = (ActionRow.objects.select_for_update()
                    .filter(incident=incident, runbook_name=runbook.name, step_index=step_index, round=round_).first())
        if existing is not None:
            untouched = existing.status == ActionStatus.PROPOSED and existing.requested_by_id is None
            if not untouched:
                return existing
            retarget = existing.target != spec["target"] or existing.params != spec["params"]
            new_hypothesis = (existing.hypothesis_id != getattr(match.hypothesis, "pk", None)
                              or existing.confidence != match.confidence)
            if retarget or new_hypothesis:
                existing.target, existing.params, existing.dry_run = spec["target"], spec["params"], dry_run
                existing.hypothesis, existing.confidence, existing.reason = match.hypothesis, match.confidence, reason
                existing.save()
                if retarget:
                    _record(existing, AuditEvent.PROPOSED,
                            f"Remediation proposal re-targeted: {_label(existing)} — {reason}")
                else:  # the same step, now backed by a (re-ranked) hypothesis: no timeline entry
                    events.publish("remediation.updated", action_event_data(existing), incident_id=incident.pk)
                # A confident hypothesis arriving after the proposal may let the policy run it.
                _maybe_automatic(existing, runbook)
            return existing
        action = ActionRow(incident=incident, runbook=runbook, runbook_name=runbook.name, step_index=step_index,
                           round=round_, hypothesis=match.hypothesis, confidence=match.confidence, reason=reason[:500],
                           dry_run=dry_run, **spec)
        try:
            with transaction.atomic():
                action.save(force_insert=True)
        except IntegrityError:  # a concurrent proposal won
            return ActionRow.objects.get(incident=incident, runbook_name=runbook.name, step_index=step_index,
                                         round=round_)
        _record(action, AuditEvent.PROPOSED, f"Remediation proposed: {_label(action)} — {reason}. "
                                             f"Dry run: {dry_run.get('summary', '')}")
        _maybe_automatic(action, runbook)
    return action


def _maybe_automatic(action: ActionRow, runbook: Runbook) -> None:
    """Approve by policy when the step allows it and the hypothesis is confident enough."""
    step = runbook.step(action.step_index) or {}
    refusal = guardrails.automation_refusal(step, action.confidence)
    if refusal:
        if step.get("automatic"):
            audit(event=AuditEvent.REFUSED, action=action, actor=POLICY, message=f"not run automatically: {refusal}")
        return
    if action.dry_run.get("error"):
        audit(event=AuditEvent.REFUSED, action=action, actor=POLICY,
              message=f"not run automatically: the dry run failed ({action.dry_run['error']})")
        return
    now = timezone.now()
    action.status, action.automatic, action.approved_at = ActionStatus.APPROVED, True, now
    action.save(update_fields=["status", "automatic", "approved_at", "updated_at"])
    _record(action, AuditEvent.APPROVED, f"Remediation approved automatically: {_label(action)} — confidence "
                                         f"{action.confidence:.2f} ≥ {step.get('auto_min_confidence', 0.8):.2f}",
            actor=POLICY)
    _queue(action)


def _queue(action: ActionRow) -> None:
    transaction.on_commit(lambda: tasks.execute_action.delay(action.pk), robust=True)


# -- people: request, approve, cancel ------------------------------------------------------------------

def create_action(*, incident: Incident, runbook: Runbook, step_index: int = 0, service: str | None = None,
                  user) -> ActionRow:
    """A responder asks for a runbook step by hand (API): proposed and requested in one go."""
    guardrails.check_can_act(user)
    if runbook.step(step_index) is None:
        raise ValidationError({"step": f"runbook {runbook.name} has no step {step_index}"})
    target = service or (incident.primary_service.slug if incident.primary_service_id else None)
    if not target:
        raise ValidationError({"service": "the incident has no primary service; name the service"})
    match = runbooks.Match(runbook=runbook, service=target, hypothesis=None, confidence=None,
                           reason=f"requested by {user.get_username()}")
    action = _propose_step(incident=incident, runbook=runbook, step_index=step_index, match=match)
    if action is None:
        raise ValidationError({"runbook": f"runbook {runbook.name} cannot be used for {target}"})
    if action.status == ActionStatus.PROPOSED and action.requested_by_id is None:
        action = request_action(action=action, user=user)
    return action


def request_action(*, action: ActionRow, user, note: str = "") -> ActionRow:
    """A responder asks for a proposed action to run. Without required approval it is approved
    (by the requester) and queued at once; otherwise it waits for another person's approval."""
    guardrails.check_can_act(user)
    with transaction.atomic():
        locked = _locked(action)
        if locked.status != ActionStatus.PROPOSED:
            raise InvalidTransition(f"action {locked.pk} is {locked.status}; only a proposed action can be requested")
        if locked.requested_by_id is not None:
            raise InvalidTransition(f"action {locked.pk} was already requested by {locked.requested_by.get_username()}")
        now = timezone.now()
        locked.requested_by, locked.requested_at = user, now
        if not locked.requires_approval:
            guardrails.check_kill_switch()
            locked.status, locked.approved_by, locked.approved_at = ActionStatus.APPROVED, user, now
        locked.save()
        tail = f" — {note}" if note else ""
        if locked.status == ActionStatus.APPROVED:
            _record(locked, AuditEvent.APPROVED, f"Remediation requested and approved (no approval required): "
                                                 f"{_label(locked)}{tail}", user=user)
            _queue(locked)
        else:
            _record(locked, AuditEvent.REQUESTED, f"Remediation requested, awaiting a second person's approval: "
                                                  f"{_label(locked)}{tail}", user=user)
    return locked


def approve_action(*, action: ActionRow, user, note: str = "") -> ActionRow:
    """Approve a requested action (four eyes: not the requester) and queue its execution."""
    guardrails.check_can_act(user)
    with transaction.atomic():
        locked = _locked(action)
        if locked.status != ActionStatus.PROPOSED:
            raise InvalidTransition(f"action {locked.pk} is {locked.status}; only a proposed action can be approved")
        guardrails.check_four_eyes(locked, user)
        guardrails.check_kill_switch()
        locked.status, locked.approved_by, locked.approved_at = ActionStatus.APPROVED, user, timezone.now()
        locked.save()
        _record(locked, AuditEvent.APPROVED, f"Remediation approved by {user.get_username()} "
                                             f"(requested by {locked.requested_by.get_username()}): {_label(locked)}"
                                             + (f" — {note}" if note else ""), user=user)
        _queue(locked)
    return locked


def cancel_action(*, action: ActionRow, user, note: str = "") -> ActionRow:
    """Withdraw a proposed or approved action before it runs."""
    guardrails.check_can_act(user)
    with transaction.atomic():
        locked = _locked(action)
        if locked.status not in (ActionStatus.PROPOSED, ActionStatus.APPROVED):
            raise InvalidTransition(f"action {locked.pk} is {locked.status}; it can no longer be cancelled")
        locked.status, locked.cancelled_by, locked.finished_at = ActionStatus.CANCELLED, user, timezone.now()
        locked.save()
        _record(locked, AuditEvent.CANCELLED, f"Remediation cancelled: {_label(locked)}" + (f" — {note}" if note else ""),
                user=user)
    return locked


def refresh_dry_run(*, action: ActionRow, user=None) -> ActionRow:
    """Compute the dry run again (the live object may have changed since the proposal)."""
    dry_run = preview(action.kind, action.params)
    with transaction.atomic():
        locked = _locked(action)
        if locked.status != ActionStatus.PROPOSED:
            return locked
        locked.dry_run = dry_run
        locked.save(update_fields=["dry_run", "updated_at"])
        events.publish("remediation.updated", action_event_data(locked), incident_id=locked.incident_id)
    return locked


# -- execution (the Celery task calls this) ------------------------------------------------------------

def execute_action(*, action_id: int) -> ActionRow:
    """Run an approved action once: guardrails, executing, the call, succeeded | failed.

    Safe to deliver twice: only an approved action starts, under its row lock, so a second
    delivery finds it executing or finished and returns. A guardrail that refuses at this point
    (kill switch, rate limit) cancels the action with the reason.
    """
    with transaction.atomic():
        action = ActionRow.objects.select_for_update(of=("self",)).select_related("incident", "runbook").get(pk=action_id)
        if action.status != ActionStatus.APPROVED:
            return action
        guardrails.lock_target(action.target)
        try:
            guardrails.check_kill_switch()
            guardrails.check_rate_limit(action.target)
        except guardrails.GuardrailError as exc:
            action.status, action.finished_at, action.error = ActionStatus.CANCELLED, timezone.now(), str(exc)
            action.save()
            _record(action, AuditEvent.REFUSED, f"Remediation refused: {_label(action)} — {exc}", actor=SYSTEM)
            return action
        action.status, action.started_at = ActionStatus.EXECUTING, timezone.now()
        action.save()
        _record(action, AuditEvent.EXECUTING, f"Remediation executing: {_label(action)}", actor=SYSTEM)
    kind = actions.get(action.kind)
    try:
        result, error = kind.execute(action.params, action_id=action.pk), ""
    except actions.ActionError as exc:
        result, error = {"error": str(exc), **exc.detail}, str(exc)
    except Exception as exc:  # a bug must still end the action, not leave it executing
        log.exception("remediation action %s crashed", action.pk)
        result, error = {"error": f"{type(exc).__name__}: {exc}"}, f"{type(exc).__name__}: {exc}"
    return _finish(action.pk, result=result, error=error)


def _finish(action_id: int, *, result: dict, error: str) -> ActionRow:
    from . import verification

    with transaction.atomic():
        action = ActionRow.objects.select_for_update(of=("self",)).select_related("incident").get(pk=action_id)
        if action.status != ActionStatus.EXECUTING:
            return action
        action.finished_at, action.result, action.error = timezone.now(), result, error[:5000]
        took = (action.finished_at - action.started_at).total_seconds()
        if error:
            action.status = ActionStatus.FAILED
            action.save()
            _record(action, AuditEvent.FAILED, f"Remediation failed after {took:.1f}s: {_label(action)} — {error}",
                    actor=SYSTEM, result=result)
        else:
            action.status = ActionStatus.SUCCEEDED
            verification.begin(action)
            action.save()
            watch = (f"; watching the incident's signal for {action.verify_seconds}s"
                     if action.verification == Verification.PENDING else "")
            _record(action, AuditEvent.SUCCEEDED, f"Remediation succeeded in {took:.1f}s: {_label(action)}{watch}",
                    actor=SYSTEM, result=result)
    if action.status == ActionStatus.SUCCEEDED and action.verification == Verification.PENDING:
        verification.check_action(action_id=action.pk)  # the signal may already be clear
    return action


def fail_lost_executions(*, older_than_seconds: int | None = None) -> int:
    """An action left executing by a dead worker is marked failed (never re-run: writes are not
    idempotent). Called from the verification beat."""
    limit = timezone.now() - timedelta(seconds=older_than_seconds or settings.REMEDIATION_EXECUTION_TIMEOUT_SECONDS)
    lost = list(ActionRow.objects.filter(status=ActionStatus.EXECUTING, started_at__lt=limit).values_list("pk", flat=True))
    for pk in lost:
        _finish(pk, result={"error": "lost"}, error="the worker executing it was lost; check the target by hand")
    return len(lost)


def record_verification(*, action: ActionRow, effective: bool, detail: dict, message: str) -> ActionRow:
    """Mark an action effective or not (verification.py decides) and, if not, propose the next step."""
    with transaction.atomic():
        locked = _locked(action)
        if locked.verification != Verification.PENDING:
            return locked
        locked.verification = Verification.EFFECTIVE if effective else Verification.NOT_EFFECTIVE
        locked.verification_detail, locked.verified_at = detail, timezone.now()
        locked.save()
        _record(locked, AuditEvent.VERIFIED, message, actor=SYSTEM, result=detail)
    if not effective:
        propose_next_step(action=locked)
    return locked


def propose_next_step(*, action: ActionRow) -> ActionRow | None:
    """After a failed or ineffective action, propose the runbook's next step for the same target."""
    runbook = action.runbook
    incident = Incident.objects.select_related("primary_service").get(pk=action.incident_id)
    if runbook is None or not runbook.enabled or runbook.step(action.step_index + 1) is None or not incident.is_active:
        return None
    service = _variables_service(action)
    hypothesis = Hypothesis.objects.filter(pk=action.hypothesis_id).first() if action.hypothesis_id else None
    match = runbooks.Match(runbook=runbook, service=service, hypothesis=hypothesis,
                           confidence=hypothesis.confidence if hypothesis else action.confidence,
                           reason=f"step {action.step_name} was not effective")
    return _propose_step(incident=incident, runbook=runbook, step_index=action.step_index + 1, match=match)


def _variables_service(action: ActionRow) -> str:
    if action.hypothesis_id:
        service = Hypothesis.objects.filter(pk=action.hypothesis_id).values_list("service", flat=True).first()
        if service:
            return service
    for value in action.params.values():
        if isinstance(value, str) and Service.objects.filter(slug=value).exists():
            return value
    return action.incident.primary_service.slug if action.incident.primary_service_id else ""


# -- global controls -----------------------------------------------------------------------------------

def set_kill_switch(*, engaged: bool, user=None, reason: str = "", actor: str = "") -> Switchboard:
    """Engage or release the kill switch (admins; or, with `actor` and no user, a process of the
    product's own such as the fire drill); recorded in the audit log."""
    from reliability_studio.access import Role, has_role

    if (user is not None or not actor) and not has_role(user, Role.ADMIN):
        raise guardrails.NotAllowed("only admins may change the kill switch")
    with transaction.atomic():
        board = Switchboard.objects.select_for_update().get_or_create(id=1)[0]
        board.kill_switch, board.kill_switch_reason = engaged, reason[:500]
        board.changed_by, board.changed_at = user, timezone.now()
        board.save()
        audit(event=AuditEvent.KILL_SWITCH, user=user, actor=actor or None,
              message=f"kill switch {'ON' if engaged else 'off'}" + (f": {reason}" if reason else ""),
              result={"engaged": engaged})
    return board


def reset_breaker(*, user) -> Switchboard:
    """Close the circuit breaker (admins): only failures after now count."""
    from reliability_studio.access import Role, has_role

    if not has_role(user, Role.ADMIN):
        raise guardrails.NotAllowed("only admins may reset the circuit breaker")
    with transaction.atomic():
        board = Switchboard.objects.select_for_update().get_or_create(id=1)[0]
        board.breaker_reset_at, board.changed_by, board.changed_at = timezone.now(), user, timezone.now()
        board.save()
        audit(event=AuditEvent.BREAKER_RESET, user=user, message="circuit breaker reset")
    return board


# -- runbooks ------------------------------------------------------------------------------------------

def save_runbook(*, clean: dict, source_file: str = "") -> tuple[Runbook, bool]:
    """Create or update a runbook from its validated form (runbooks.validate_runbook)."""
    fields = {k: clean[k] for k in ("title", "description", "enabled", "match", "steps")}
    fields["source_file"], fields["source_line"] = source_file, clean.get("source_line")
    runbook, created = Runbook.objects.update_or_create(name=clean["name"], defaults=fields)
    return runbook, created
