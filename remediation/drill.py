"""What the fire drill needs from remediation to compare MTTR with and without automatic runs:
whether any runbook may run by itself, and a switch that turns automatic remediation off for the
"without" run (the global kill switch, engaged and released by the drill, both in the audit log)."""
from __future__ import annotations

from contextlib import contextmanager

from . import guardrails, services
from .models import Runbook, Switchboard

DRILL = "fire drill"


class DrillPreconditionError(guardrails.GuardrailError):
    """The comparison cannot be fair in the current state; the message says why."""


def automatic_steps() -> list[str]:
    """'runbook/step (≥ confidence)' of every step of an enabled runbook that may run by itself."""
    return [f"{runbook.name}/{step.get('name', i)} (≥ {step.get('auto_min_confidence', 0.8):.2f})"
            for runbook in Runbook.objects.filter(enabled=True).order_by("name")
            for i, step in enumerate(runbook.steps or []) if step.get("automatic")]


def check_automation_possible() -> list[str]:
    """The automatic steps, or DrillPreconditionError when nothing could run by itself — the "with"
    run would then be the "without" run under another name."""
    engaged, why = guardrails.kill_switch()
    if engaged:
        raise DrillPreconditionError(f"the remediation kill switch is on ({why}); release it to compare")
    state = guardrails.breaker()
    if state.open:
        raise DrillPreconditionError(f"the remediation circuit breaker is open ({state.failures} automatic actions "
                                     "failed in a row); reset it in the admin to compare")
    steps = automatic_steps()
    if not steps:
        raise DrillPreconditionError("no enabled runbook has a step with `automatic: true`, so nothing can run by "
                                     "itself; allow one (e.g. runbooks/demo.yaml) and run `manage.py load_runbooks`")
    return steps


@contextmanager
def automatic_remediation(allowed: bool):
    """Allowed: leave the switchboard as it is (the caller checked it with check_automation_possible).
    Not allowed: engage the kill switch for the block — no action is approved or executed, by the
    policy or by a person — and release it afterwards, even when the block fails."""
    if allowed:
        yield
        return
    if Switchboard.current().kill_switch:  # engaged by someone else: theirs to release, not ours
        yield
        return
    services.set_kill_switch(engaged=True, actor=DRILL, reason="fire drill: the run without automatic remediation")
    try:
        yield
    finally:
        services.set_kill_switch(engaged=False, actor=DRILL, reason="fire drill: run without automatic remediation over")
