"""Matching runbooks to incidents: hypotheses best first, proposals follow the best suspect until
someone acts, and new hypotheses trigger matching after the investigation's commit."""
import pytest

from investigation.models import Hypothesis, HypothesisKind, HypothesisStatus
from remediation import services
from remediation.models import Action, ActionStatus

RUNBOOK = """
    runbooks:
      - name: recover
        match: {services: [checkout, payment], hypothesis_kinds: [code_error, crash_loop], min_confidence: 0.4}
        steps: [{action: demo.recover, params: {service: $service}}]
      - name: only-rules
        match: {rules: ["High error ratio"]}
        steps: [{action: demo.recover, params: {service: "*"}}]
      - name: never
        match: {labels: {team: nobody}}
        steps: [{action: demo.recover, params: {service: "*"}}]
"""


@pytest.fixture(autouse=True)
def demo_down(settings):
    settings.DEMO_CONTROL_URL = "http://127.0.0.1:9"


def test_runbooks_match_on_hypothesis_service_rule_and_labels(load_runbook, incident, hypothesis):
    load_runbook(RUNBOOK)
    hypothesis(kind=HypothesisKind.LATENCY, confidence=0.9, service="checkout", rank=1)  # wrong kind
    hypothesis(kind=HypothesisKind.CODE_ERROR, confidence=0.3, service="payment", rank=2)  # too unsure
    assert {a.runbook_name for a in services.propose_for_incident(incident_id=incident.pk)} == {"only-rules"}
    hypothesis(kind=HypothesisKind.CRASH_LOOP, confidence=0.6, service="payment", rank=3)
    touched = {a.runbook_name: a for a in services.propose_for_incident(incident_id=incident.pk)}
    assert set(touched) == {"recover", "only-rules"}
    assert touched["recover"].target == "demo payment" and touched["recover"].confidence == 0.6
    assert "Dry run failed" in touched["recover"].dry_run["summary"]  # shown, not hidden
    assert Action.objects.count() == 2  # matching again duplicates nothing


def test_an_untouched_proposal_follows_the_best_hypothesis(load_runbook, incident, hypothesis, responders):
    load_runbook(RUNBOOK)
    first = hypothesis(kind=HypothesisKind.CODE_ERROR, confidence=0.6, service="checkout", rank=1)
    services.propose_for_incident(incident_id=incident.pk)
    assert Action.objects.get(runbook_name="recover").target == "demo checkout"
    first.status = HypothesisStatus.REJECTED
    first.save()
    hypothesis(kind=HypothesisKind.CODE_ERROR, confidence=0.7, service="payment", rank=2)
    services.propose_for_incident(incident_id=incident.pk)
    action = Action.objects.get(runbook_name="recover")
    assert action.target == "demo payment"
    assert incident.timeline.filter(message__startswith="Remediation proposal re-targeted").exists()
    services.request_action(action=action, user=responders[0])
    Hypothesis.objects.filter(service="payment").update(status=HypothesisStatus.REJECTED)
    hypothesis(kind=HypothesisKind.CRASH_LOOP, confidence=0.9, service="checkout", rank=3)
    services.propose_for_incident(incident_id=incident.pk)
    assert Action.objects.get(runbook_name="recover").target == "demo payment"  # someone acted: kept


def test_a_saved_hypothesis_queues_matching_after_commit(load_runbook, incident, hypothesis,
                                                         django_capture_on_commit_callbacks):
    load_runbook(RUNBOOK)
    with django_capture_on_commit_callbacks(execute=True):
        hypothesis(kind=HypothesisKind.CRASH_LOOP, confidence=0.8, service="checkout")
    assert Action.objects.filter(runbook_name="recover", status=ActionStatus.PROPOSED).exists()


def test_resolved_incidents_get_no_proposals(load_runbook, incident, hypothesis):
    from incidents import services as incident_services

    load_runbook(RUNBOOK)
    incident_services.transition_incident(incident=incident, to="resolved")
    assert services.propose_for_incident(incident_id=incident.pk) == []
