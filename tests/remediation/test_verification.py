"""The closed loop: after an action the incident's alerts are watched; effective when they all
clear, not effective when the window ends with one still active — then the next step is proposed."""
from datetime import timedelta

import pytest
from django.utils import timezone

from detection.models import Alert, AlertState
from incidents.models import EventKind
from remediation import services, verification
from remediation.models import Action, ActionStatus, Verification

RUNBOOK = """
    runbooks:
      - name: flag
        steps:
          - {{name: first, action: webhook, params: {{url: "{url}"}}, verify_seconds: 30}}
          - {{name: second, action: webhook, params: {{url: "{url}", body: {{all: true}}}}}}
"""


@pytest.fixture
def executed(load_runbook, incident, responders, receiver):
    hook = receiver(200)
    load_runbook(RUNBOOK.format(url=hook.url))
    [action] = services.propose_for_incident(incident_id=incident.pk)
    alice, bob = responders
    services.request_action(action=action, user=alice)
    services.approve_action(action=action, user=bob)
    return services.execute_action(action_id=action.pk)


def test_an_action_is_watched_and_marked_effective_when_the_alerts_clear(executed, incident):
    assert executed.status == ActionStatus.SUCCEEDED and executed.verification == Verification.PENDING
    assert executed.verify_until - executed.finished_at == timedelta(seconds=30)
    assert executed.verification_detail["watching"][0]["rule"] == "High error ratio"
    assert verification.check_pending() == 0  # still firing, window open
    Alert.objects.filter(incident=incident).update(state=AlertState.RESOLVED, resolved_at=timezone.now())
    assert verification.check_pending() == 1
    action = Action.objects.get(pk=executed.pk)
    assert action.verification == Verification.EFFECTIVE
    assert action.verification_detail["alerts"][0]["state"] == AlertState.RESOLVED
    last = incident.timeline.filter(kind=EventKind.REMEDIATION).latest("id")
    assert last.message.startswith("Remediation verified effective: every alert of the incident cleared")
    assert last.data["verification"] == Verification.EFFECTIVE
    assert Action.objects.filter(incident=incident).count() == 1  # nothing more to do


def test_not_effective_after_the_window_proposes_the_next_step(executed, incident):
    later = executed.verify_until + timedelta(seconds=1)
    verification.check_pending(now=later)
    action = Action.objects.get(pk=executed.pk)
    assert action.verification == Verification.NOT_EFFECTIVE
    nxt = Action.objects.get(incident=incident, step_index=1)
    assert (nxt.step_name, nxt.status, nxt.params["body"]) == ("second", ActionStatus.PROPOSED, {"all": True})
    assert nxt.reason == "step first was not effective"
    messages = list(incident.timeline.filter(kind=EventKind.REMEDIATION).order_by("id").values_list("message", flat=True))
    assert any(m.startswith("Remediation not effective: 1 alert(s) still active") for m in messages)
    assert messages[-1].startswith("Remediation proposed: webhook")


def test_a_manual_incident_without_alerts_has_nothing_to_verify(load_runbook, responders, receiver, service):
    from incidents import services as incident_services

    incident = incident_services.create_incident(title="Checkout slow", severity="high", primary_service=service)
    hook = receiver(200)
    load_runbook(RUNBOOK.format(url=hook.url))
    [action] = services.propose_for_incident(incident_id=incident.pk)
    services.request_action(action=action, user=responders[0])
    services.approve_action(action=action, user=responders[1])
    action = services.execute_action(action_id=action.pk)
    assert action.verification == Verification.SKIPPED


def test_an_execution_left_by_a_dead_worker_is_marked_failed(incident):
    action = Action.objects.create(incident=incident, runbook_name="r", step_name="s", kind="webhook", target="t",
                                   status=ActionStatus.EXECUTING, started_at=timezone.now() - timedelta(hours=1))
    assert services.fail_lost_executions(older_than_seconds=60) == 1
    action.refresh_from_db()
    assert action.status == ActionStatus.FAILED and "worker executing it was lost" in action.error
