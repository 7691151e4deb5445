"""The closed loop: after an action, watch the signal that opened the incident.

The signal is the incident's alerts (detection's per-series state, with its own hysteresis: an
alert resolves only after its rule's recovery hold). The action is **effective** once none of
them is firing or pending; **not effective** if one still is when the verification window ends,
and then the runbook's next step is proposed. An incident without alerts (declared by hand) has
nothing to watch: its actions are marked skipped. An effective action changes nothing else:
detection auto-resolves the incident as usual.
"""
from __future__ import annotations

from datetime import timedelta

from django.utils import timezone

from detection.models import Alert, AlertState

from .models import Action, Verification

ACTIVE = (AlertState.FIRING, AlertState.PENDING)


def _alerts(action: Action) -> list[Alert]:
    return list(Alert.objects.filter(incident_id=action.incident_id).select_related("rule", "service"))


def _describe(alert: Alert) -> dict:
    return {"alert": alert.pk, "name": alert.name, "state": alert.state, "value": alert.value,
            "service": alert.service.slug if alert.service_id else None,
            "rule": alert.rule.name if alert.rule_id else None,
            "query": alert.rule.query if alert.rule_id else None,
            "resolved_at": alert.resolved_at.isoformat() if alert.resolved_at else None}


def begin(action: Action) -> None:
    """Set the verification fields on a just-succeeded action (the caller saves it)."""
    alerts = _alerts(action)
    now = action.finished_at or timezone.now()
    if not alerts or not action.verify_seconds:
        action.verification = Verification.SKIPPED
        action.verification_detail = {"reason": "the incident has no alerts to watch" if not alerts
                                      else "the runbook step asks for no verification"}
        return
    action.verification, action.verify_until = Verification.PENDING, now + timedelta(seconds=action.verify_seconds)
    action.verification_detail = {"watching": [_describe(a) for a in alerts], "started_at": now.isoformat()}


def check_action(*, action_id: int, now=None) -> Action:
    """Decide one pending verification if it can be decided now."""
    from . import services

    now = now or timezone.now()
    action = Action.objects.select_related("incident").get(pk=action_id)
    if action.verification != Verification.PENDING:
        return action
    alerts = _alerts(action)
    active = [a for a in alerts if a.state in ACTIVE]
    after = (now - action.finished_at).total_seconds() if action.finished_at else 0.0
    detail = {"alerts": [_describe(a) for a in alerts], "seconds_after_action": round(after, 1)}
    if not active:
        return services.record_verification(
            action=action, effective=True, detail=detail,
            message=f"Remediation verified effective: every alert of the incident cleared {after:.0f}s after "
                    f"{action.kind} on {action.target}")
    if action.verify_until and now >= action.verify_until:
        names = ", ".join(sorted({f"{a.name}" for a in active}))[:300]
        return services.record_verification(
            action=action, effective=False, detail=detail,
            message=f"Remediation not effective: {len(active)} alert(s) still active {after:.0f}s after "
                    f"{action.kind} on {action.target} ({names})")
    return action


def check_pending(*, now=None) -> int:
    """Beat: decide every pending verification that can be decided; returns how many were."""
    decided = 0
    # Two beats checking the same action is harmless: the decision is taken under the row's lock
    # and only once (services.record_verification).
    for pk in Action.objects.awaiting_verification().values_list("pk", flat=True):
        action = check_action(action_id=pk, now=now)
        decided += action.verification != Verification.PENDING
    return decided
