"""The remediation region of the incident page ("actions"): recommended actions with their dry
run, request / approve / cancel, live status and the verification result.

`register()` (called from RemediationConfig.ready()) replaces the incidents' placeholder region
`actions` in `incidents.panels`. The region refreshes itself on `remediation.updated` (the
template's hx-trigger), like every region of the page.
"""
from __future__ import annotations

from incidents import panels
from incidents.models import Incident
from reliability_studio.access import Role, has_role

from . import guardrails
from .models import ActionStatus, Verification

REGION = "actions"
TEMPLATE = "remediation/_incident_actions.html"
STATUS_BADGE = {ActionStatus.PROPOSED: "", ActionStatus.APPROVED: "run-queued", ActionStatus.EXECUTING: "run-running",
                ActionStatus.SUCCEEDED: "run-complete", ActionStatus.FAILED: "run-failed",
                ActionStatus.CANCELLED: "rejected"}
VERIFICATION_BADGE = {Verification.PENDING: "run-running", Verification.EFFECTIVE: "ok",
                      Verification.NOT_EFFECTIVE: "run-failed", Verification.SKIPPED: "rejected"}


def _row(action, user) -> dict:
    may_act = has_role(user, Role.RESPONDER)
    proposed = action.status == ActionStatus.PROPOSED
    return {
        "action": action,
        "status_badge": STATUS_BADGE.get(action.status, ""),
        "verification_badge": VERIFICATION_BADGE.get(action.verification, ""),
        "can_request": may_act and proposed and action.requested_by_id is None,
        "can_approve": may_act and proposed and action.requested_by_id not in (None, user.pk),
        "awaiting_other": proposed and action.requested_by_id == getattr(user, "pk", None),
        "can_cancel": may_act and action.status in (ActionStatus.PROPOSED, ActionStatus.APPROVED),
        "can_preview": may_act and proposed,
    }


def incident_actions(request, incident: Incident) -> dict:
    """Context of the region: every action of the incident (newest first) and the switches."""
    actions = (incident.remediation_actions.select_related("requested_by", "approved_by", "hypothesis")
               .order_by("-created_at", "-id"))
    engaged, why = guardrails.kill_switch()
    return {
        "incident": incident,
        "remediation_actions": [_row(a, request.user) for a in actions],
        "kill_switch": engaged,
        "kill_switch_reason": why,
        "breaker": guardrails.breaker(),
    }


def register() -> None:
    """Put the region into the incident page (replaces the placeholder; idempotent)."""
    panels.register_region(REGION, TEMPLATE, incident_actions, column=panels.SIDE, order=30)
