"""Guardrails: roles, four eyes, rate limit per target, kill switch, circuit breaker, the
automation policy, and an audit log the database will not let anyone change."""
import pytest
from django.db import DatabaseError, connection, transaction

from incidents.errors import InvalidTransition
from remediation import guardrails, services
from remediation.models import Action, ActionStatus, AuditEvent, AuditRecord, Verification

RUNBOOK = """
    runbooks:
      - name: recover
        match: {min_confidence: 0.3}
        steps:
          - name: recover
            action: demo.recover
            params: {service: $service}
            automatic: true
            auto_min_confidence: 0.8
          - name: recover-all
            action: demo.recover
            params: {service: "*"}
"""


@pytest.fixture
def proposed(load_runbook, incident, hypothesis, settings):
    settings.DEMO_CONTROL_URL = "http://127.0.0.1:9"  # nothing listens: dry runs and runs fail fast
    load_runbook(RUNBOOK)
    hypothesis(confidence=0.5)
    [action] = services.propose_for_incident(incident_id=incident.pk)
    return action


def test_viewer_cannot_request(proposed, viewer):
    with pytest.raises(guardrails.NotAllowed):
        services.request_action(action=proposed, user=viewer)


def test_viewer_gets_403_from_the_api_and_the_page(proposed, viewer, api, client):
    api.as_user(viewer)
    assert api.post(f"/api/v1/remediation/actions/{proposed.pk}/request/", {}, format="json").status_code == 403
    assert api.post(f"/api/v1/remediation/actions/{proposed.pk}/approve/", {}, format="json").status_code == 403
    assert api.post("/api/v1/remediation/actions/", {"incident": proposed.incident_id, "runbook": "recover"},
                    format="json").status_code == 403
    assert api.get(f"/api/v1/remediation/actions/{proposed.pk}/").status_code == 200
    client.force_login(viewer)
    assert client.post(f"/remediation/actions/{proposed.pk}/request/").status_code == 403
    assert Action.objects.get(pk=proposed.pk).requested_by_id is None


def test_four_eyes_the_requester_cannot_approve(proposed, responders):
    alice, bob = responders
    services.request_action(action=proposed, user=alice)
    with pytest.raises(guardrails.NotAllowed, match="four eyes"):
        services.approve_action(action=proposed, user=alice)
    approved = services.approve_action(action=proposed, user=bob)
    assert (approved.status, approved.requested_by, approved.approved_by) == (ActionStatus.APPROVED, alice, bob)


def test_four_eyes_through_the_api(proposed, responders, api):
    alice, bob = responders
    assert api.as_user(alice).post(f"/api/v1/remediation/actions/{proposed.pk}/request/", {}, format="json").status_code == 200
    refused = api.as_user(alice).post(f"/api/v1/remediation/actions/{proposed.pk}/approve/", {}, format="json")
    assert refused.status_code == 403 and "four eyes" in refused.json()["message"]
    ok = api.as_user(bob).post(f"/api/v1/remediation/actions/{proposed.pk}/approve/", {"note": "go"}, format="json")
    assert ok.status_code == 200 and ok.json()["approved_by"] == bob.username


def test_an_unrequested_proposal_cannot_be_approved(proposed, responders):
    with pytest.raises(guardrails.GuardrailError, match="nobody has requested"):
        services.approve_action(action=proposed, user=responders[1])


def test_a_step_without_required_approval_runs_on_one_request(load_runbook, incident, responders, settings):
    settings.DEMO_CONTROL_URL = "http://127.0.0.1:9"
    load_runbook("""
        runbooks:
          - name: quick
            steps: [{action: demo.recover, params: {service: $service}, requires_approval: false}]
    """)
    [action] = services.propose_for_incident(incident_id=incident.pk)
    action = services.request_action(action=action, user=responders[0])
    assert action.status == ActionStatus.APPROVED and action.approved_by == responders[0]


def test_rate_limit_per_target(load_runbook, incident, responders, settings, receiver):
    hook = receiver(200)
    settings.REMEDIATION_RATE_LIMIT_COUNT = 3
    steps = "\n".join(f"              - {{name: s{i}, action: webhook, params: {{url: '{hook.url}'}}}}" for i in range(4))
    load_runbook("runbooks:\n  - name: hooks\n    steps:\n" + "\n".join(line[10:] for line in steps.splitlines()))
    alice, bob = responders
    from remediation.models import Runbook

    runbook = Runbook.objects.get(name="hooks")
    outcomes = []
    for step in range(4):
        action = services.create_action(incident=incident, runbook=runbook, step_index=step, user=alice)
        services.approve_action(action=action, user=bob)
        outcomes.append(services.execute_action(action_id=action.pk))
    assert [a.status for a in outcomes] == [ActionStatus.SUCCEEDED] * 3 + [ActionStatus.CANCELLED]
    assert "rate limit" in outcomes[-1].error and "at most 3" in outcomes[-1].error
    assert len(hook.deliveries) == 3
    assert AuditRecord.objects.filter(action_id=outcomes[-1].pk, event=AuditEvent.REFUSED).exists()


def test_kill_switch_setting_refuses_approval_and_execution(proposed, responders, settings):
    alice, bob = responders
    services.request_action(action=proposed, user=alice)
    settings.REMEDIATION_KILL_SWITCH = True
    with pytest.raises(guardrails.GuardrailError, match="kill switch"):
        services.approve_action(action=proposed, user=bob)


def test_kill_switch_toggle_cancels_an_approved_action_at_execution(proposed, responders, admin_user):
    alice, bob = responders
    services.request_action(action=proposed, user=alice)
    services.approve_action(action=proposed, user=bob)
    services.set_kill_switch(engaged=True, user=admin_user, reason="change freeze")
    action = services.execute_action(action_id=proposed.pk)
    assert action.status == ActionStatus.CANCELLED and "kill switch" in action.error and "change freeze" in action.error
    with pytest.raises(guardrails.NotAllowed):
        services.set_kill_switch(engaged=False, user=alice)
    assert AuditRecord.objects.filter(event=AuditEvent.KILL_SWITCH, actor=admin_user.username).count() == 1


def test_kill_switch_api_is_for_admins(api, responders, admin_user, db):
    assert api.as_user(responders[0]).post("/api/v1/remediation/kill-switch/", {"engaged": True}, format="json").status_code == 403
    answer = api.as_user(admin_user).post("/api/v1/remediation/kill-switch/", {"engaged": True, "reason": "drill"}, format="json")
    assert answer.status_code == 200 and answer.json()["engaged"] is True
    assert api.as_user(responders[0]).get("/api/v1/remediation/kill-switch/").json()["engaged"] is True


def test_automatic_only_above_the_steps_confidence_threshold(load_runbook, incident, hypothesis, settings):
    settings.DEMO_CONTROL_URL = "http://127.0.0.1:9"
    load_runbook(RUNBOOK)
    h = hypothesis(confidence=0.79)
    [action] = services.propose_for_incident(incident_id=incident.pk)
    assert action.status == ActionStatus.PROPOSED and not action.automatic
    refusal = AuditRecord.objects.get(action_id=action.pk, event=AuditEvent.REFUSED)
    assert "confidence 0.79 is below the step's threshold 0.80" in refusal.message
    h.confidence = 0.85
    h.save()
    Action.objects.all().delete()
    [action] = services.propose_for_incident(incident_id=incident.pk)
    # The dry run could not reach the demo: an automatic run needs a dry run that worked.
    assert action.status == ActionStatus.PROPOSED
    assert "the dry run failed" in AuditRecord.objects.filter(action_id=action.pk, event=AuditEvent.REFUSED).last().message


def test_circuit_breaker_stops_automatic_remediation_after_repeated_failures(incident, settings, admin_user):
    settings.REMEDIATION_BREAKER_FAILURES = 3
    from django.utils import timezone

    for i in range(3):
        Action.objects.create(incident=incident, runbook_name="r", step_index=i, step_name="s", kind="demo.recover",
                              target="demo x", status=ActionStatus.FAILED, automatic=True, finished_at=timezone.now())
    state = guardrails.breaker()
    assert state.open and state.failures == 3
    step = {"automatic": True, "auto_min_confidence": 0.5}
    assert "circuit breaker is open" in guardrails.automation_refusal(step, 0.99)
    services.reset_breaker(user=admin_user)
    assert not guardrails.breaker().open and guardrails.automation_refusal(step, 0.99) == ""
    Action.objects.create(incident=incident, runbook_name="r", step_index=9, step_name="s", kind="demo.recover",
                          target="demo x", status=ActionStatus.SUCCEEDED, verification=Verification.NOT_EFFECTIVE,
                          automatic=True, finished_at=timezone.now())
    assert guardrails.breaker().failures == 1


def test_cancelled_actions_cannot_be_requested(proposed, responders):
    services.cancel_action(action=proposed, user=responders[0])
    with pytest.raises(InvalidTransition):
        services.request_action(action=proposed, user=responders[1])


# -- the audit log is append-only, in the database -------------------------------------------------

def test_audit_rows_cannot_be_updated_or_deleted_even_with_raw_sql(proposed):
    record = AuditRecord.objects.filter(action_id=proposed.pk).first()
    attempts = [
        lambda: AuditRecord.objects.filter(pk=record.pk).update(actor="mallory"),
        lambda: AuditRecord.objects.filter(pk=record.pk).delete(),
        lambda: record.delete(),
        lambda: (setattr(record, "message", "nothing happened"), record.save()),
    ]
    for attempt in attempts:
        with pytest.raises(DatabaseError, match="append-only"):
            with transaction.atomic():
                attempt()
    for sql in ("UPDATE remediation_auditrecord SET actor = 'mallory'", "DELETE FROM remediation_auditrecord"):
        with pytest.raises(DatabaseError, match="append-only"):
            with transaction.atomic(), connection.cursor() as cursor:
                cursor.execute(sql)
    stored = AuditRecord.objects.get(pk=record.pk)
    assert (stored.actor, stored.message) != ("mallory", "nothing happened")
    assert AuditRecord.objects.filter(action_id=proposed.pk).count() == 2


def test_audit_api_and_admin_are_read_only(proposed, admin_user, api, client):
    record = AuditRecord.objects.filter(action_id=proposed.pk).first()
    api.as_user(admin_user)
    assert api.get("/api/v1/remediation/audit/").json()["count"] >= 1
    assert api.put(f"/api/v1/remediation/audit/{record.pk}/", {"actor": "x"}, format="json").status_code == 405
    assert api.delete(f"/api/v1/remediation/audit/{record.pk}/").status_code == 405
    client.force_login(admin_user)
    assert client.post(f"/admin/remediation/auditrecord/{record.pk}/delete/", {"post": "yes"}).status_code == 403
    assert AuditRecord.objects.filter(pk=record.pk).exists()


def test_deleting_an_incident_keeps_its_audit_history(proposed):
    count = AuditRecord.objects.filter(incident_id=proposed.incident_id).count()
    proposed.incident.delete()
    assert AuditRecord.objects.filter(incident_id=proposed.incident_id).count() == count


def test_a_confident_hypothesis_runs_an_automatic_step_without_a_person(load_runbook, incident, hypothesis,
                                                                       receiver, django_capture_on_commit_callbacks):
    hook = receiver(200)
    load_runbook(f"""
        runbooks:
          - name: auto
            steps: [{{action: webhook, params: {{url: "{hook.url}"}}, automatic: true, auto_min_confidence: 0.8}}]
    """)
    hypothesis(confidence=0.86)
    with django_capture_on_commit_callbacks(execute=True):  # the queued task runs (eagerly) on commit
        [action] = services.propose_for_incident(incident_id=incident.pk)
    action.refresh_from_db()
    assert (action.status, action.automatic, action.approved_by) == (ActionStatus.SUCCEEDED, True, None)
    assert len(hook.deliveries) == 1
    approved = AuditRecord.objects.get(action_id=action.pk, event=AuditEvent.APPROVED)
    assert approved.actor == "policy" and "confidence 0.86 ≥ 0.80" in approved.message


def test_a_proposal_made_before_the_investigation_runs_automatically_once_a_hypothesis_backs_it(
        load_runbook, incident, hypothesis, receiver, django_capture_on_commit_callbacks):
    hook = receiver(200)
    load_runbook(f"""
        runbooks:
          - name: auto
            steps: [{{action: webhook, params: {{url: "{hook.url}"}}, automatic: true, auto_min_confidence: 0.8}}]
    """)
    [action] = services.propose_for_incident(incident_id=incident.pk)  # at opening: no hypothesis yet
    assert action.status == ActionStatus.PROPOSED and action.hypothesis is None
    with django_capture_on_commit_callbacks(execute=True):
        hypothesis(confidence=0.9)  # the investigation's commit triggers matching again
    action.refresh_from_db()
    assert action.status == ActionStatus.SUCCEEDED and action.automatic and action.confidence == 0.9
    assert len(hook.deliveries) == 1
