"""Guardrails: who may ask, four eyes, a rate limit per target, a circuit breaker on automatic
remediation, the global kill switch, and the automation policy. Reads only; the services call
these inside their transactions and record a refusal in the audit log."""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection
from django.utils import timezone

from incidents.errors import DomainError
from reliability_studio.access import Role, has_role

from .models import Action, ActionStatus, Switchboard, Verification


class GuardrailError(DomainError):
    """A guardrail refused the operation; the message says which and why."""

    http_status = 409
    code = "guardrail"


class NotAllowed(GuardrailError):
    http_status = 403
    code = "forbidden"


class RateLimited(GuardrailError):
    http_status = 429
    code = "rate_limited"


def check_can_act(user) -> None:
    """Only responders and admins may request, approve or cancel remediation."""
    if not has_role(user, Role.RESPONDER):
        raise NotAllowed("only responders and admins may request or approve remediation")


def check_four_eyes(action: Action, approver) -> None:
    """Where approval is required, someone other than the requester approves."""
    if action.requested_by_id is None:
        raise GuardrailError("nobody has requested this action yet: a responder requests it, another approves it")
    if action.requested_by_id == approver.pk:
        raise NotAllowed("four eyes: the person who requested an action cannot approve it")


def kill_switch() -> tuple[bool, str]:
    """(engaged, why). The setting engages it for the whole deployment; the admin toggle at runtime."""
    if settings.REMEDIATION_KILL_SWITCH:
        return True, "REMEDIATION_KILL_SWITCH is set"
    board = Switchboard.current()
    if board.kill_switch:
        who = board.changed_by.get_username() if board.changed_by_id else "an admin"
        return True, f"engaged by {who}" + (f": {board.kill_switch_reason}" if board.kill_switch_reason else "")
    return False, ""


def check_kill_switch() -> None:
    engaged, why = kill_switch()
    if engaged:
        raise GuardrailError(f"the remediation kill switch is on ({why})")


def lock_target(target: str) -> None:
    """Serialise the rate-limit check and the start of execution per target (transaction lock)."""
    key = int.from_bytes(hashlib.sha256(f"remediation:{target}".encode()).digest()[:8], "big", signed=True)
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s)", [key])


def recent_runs(target: str, now: datetime | None = None) -> int:
    window = timedelta(seconds=settings.REMEDIATION_RATE_LIMIT_WINDOW_SECONDS)
    return (Action.objects.filter(target=target, started_at__gte=(now or timezone.now()) - window)
            .exclude(status=ActionStatus.CANCELLED).count())


def check_rate_limit(target: str, now: datetime | None = None) -> None:
    """At most REMEDIATION_RATE_LIMIT_COUNT actions per target per window (e.g. 3 restarts in 10 min)."""
    limit = settings.REMEDIATION_RATE_LIMIT_COUNT
    count = recent_runs(target, now)
    if count >= limit:
        minutes = settings.REMEDIATION_RATE_LIMIT_WINDOW_SECONDS / 60
        raise RateLimited(f"rate limit: {target} already had {count} action(s) in the last {minutes:g} minutes "
                          f"(at most {limit})")


@dataclass(frozen=True)
class Breaker:
    open: bool
    failures: int  # consecutive, most recent first
    threshold: int


def breaker() -> Breaker:
    """Open after REMEDIATION_BREAKER_FAILURES consecutive failed or ineffective automatic actions
    (since the last reset, within REMEDIATION_BREAKER_WINDOW_SECONDS); one that works closes it."""
    threshold = settings.REMEDIATION_BREAKER_FAILURES
    since = timezone.now() - timedelta(seconds=settings.REMEDIATION_BREAKER_WINDOW_SECONDS)
    reset = Switchboard.current().breaker_reset_at
    if reset and reset > since:
        since = reset
    outcomes = (Action.objects.filter(automatic=True, finished_at__gte=since)
                .filter(status__in=[ActionStatus.FAILED, ActionStatus.SUCCEEDED])
                .exclude(verification=Verification.PENDING)
                .order_by("-finished_at", "-id").values_list("status", "verification")[:threshold])
    failures = 0
    for status, verification in outcomes:
        if status == ActionStatus.FAILED or verification == Verification.NOT_EFFECTIVE:
            failures += 1
        else:
            break
    return Breaker(open=failures >= threshold > 0, failures=failures, threshold=threshold)


def automation_refusal(step: dict, confidence: float | None) -> str:
    """Why this step may not run by itself ("" = it may): the runbook must allow it, the
    hypothesis' confidence must reach the step's threshold, the kill switch be off and the breaker
    closed."""
    if not step.get("automatic"):
        return "the runbook step does not allow automatic runs"
    if confidence is None:
        return "no hypothesis to judge confidence by"
    threshold = step.get("auto_min_confidence", 0.8)
    if confidence < threshold:
        return f"confidence {confidence:.2f} is below the step's threshold {threshold:.2f}"
    engaged, why = kill_switch()
    if engaged:
        return f"the kill switch is on ({why})"
    state = breaker()
    if state.open:
        return f"the circuit breaker is open ({state.failures} automatic actions failed in a row)"
    return ""
