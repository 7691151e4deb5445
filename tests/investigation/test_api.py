"""The investigation API: read the run, re-run, decide hypotheses; roles and errors."""
from __future__ import annotations

import pytest
from django.core.management import CommandError, call_command

from incidents.models import EventKind
from investigation.models import HypothesisStatus, InvestigationRun, RunStatus, Trigger

from ..factories import IncidentFactory
from .factories import EvidenceFactory, HypothesisFactory, InvestigationRunFactory

pytestmark = pytest.mark.django_db


def url(incident, suffix=""):
    return f"/api/v1/incidents/{incident.key}/investigation/{suffix}"


@pytest.fixture
def investigated(db):
    incident = IncidentFactory()
    older = InvestigationRunFactory(incident=incident, trigger=Trigger.OPENED, trigger_key="opened")
    latest = InvestigationRunFactory(incident=incident, summary="payment errors began 10:02:13 UTC")
    evidence = EvidenceFactory(run=latest)
    first = HypothesisFactory(incident=incident, run=latest, service="payment", confidence=0.6, rank=1)
    second = HypothesisFactory(incident=incident, run=latest, service="checkout", confidence=0.3, rank=2)
    first.evidence.add(evidence)
    return incident, older, latest, first, second


def test_viewer_reads_the_latest_run_earlier_runs_and_hypotheses(api, viewer, investigated):
    incident, older, latest, first, second = investigated
    response = api.as_user(viewer).get(url(incident))
    assert response.status_code == 200
    body = response.json()
    assert body["incident"] == incident.key
    assert body["latest"]["id"] == latest.pk and body["latest"]["summary"].startswith("payment errors")
    assert [s["name"] for s in body["latest"]["steps"]][0] == "scoping"
    assert body["latest"]["evidence"][0]["query"].startswith("sum(rate(")
    assert {r["id"] for r in body["runs"]} == {older.pk, latest.pk}
    assert [h["service"] for h in body["hypotheses"]] == ["payment", "checkout"]
    assert body["hypotheses"][0]["evidence"] == [first.evidence.get().pk]


def test_an_incident_without_a_run_reads_as_none(api, viewer):
    incident = IncidentFactory()
    body = api.as_user(viewer).get(f"/api/v1/incidents/{incident.pk}/investigation/").json()
    assert body["latest"] is None and body["runs"] == [] and body["hypotheses"] == []


def test_responder_reruns_and_gets_202_with_the_queued_run(api, responder, monkeypatch, investigated):
    from investigation import services

    queued = []
    monkeypatch.setattr(services.tasks.run_investigation, "apply_async", lambda args, **kw: queued.append(args))
    incident = investigated[0]
    with_capture = api.as_user(responder)
    response = with_capture.post(url(incident))
    assert response.status_code == 202
    run = InvestigationRun.objects.get(pk=response.json()["id"])
    assert run.trigger == Trigger.MANUAL and run.requested_by == responder and run.status == RunStatus.QUEUED
    assert response.json()["status"] == "queued"


def test_viewers_cannot_rerun_or_decide(api, viewer, investigated):
    incident, _older, _latest, first, _second = investigated
    client = api.as_user(viewer)
    assert client.post(url(incident)).status_code == 403
    response = client.patch(url(incident, f"hypotheses/{first.pk}/"), {"status": "confirmed"}, format="json")
    assert response.status_code == 403 and "message" in response.json()
    first.refresh_from_db()
    assert first.status == HypothesisStatus.PROPOSED


def test_anonymous_clients_get_401(api, investigated):
    assert api.get(url(investigated[0])).status_code == 401


def test_unknown_incident_keys_are_404_with_a_json_body(api, viewer):
    for key in ("INC-999999", "999999", "not-a-key"):
        response = api.as_user(viewer).get(f"/api/v1/incidents/{key}/investigation/")
        assert response.status_code == 404 and response.json()["message"]


def test_confirming_sets_the_root_cause_and_keeps_the_others_proposed(api, responder, investigated):
    incident, _older, _latest, first, second = investigated
    response = api.as_user(responder).patch(url(incident, f"hypotheses/{first.pk}/"),
                                            {"status": "confirmed", "note": "pool exhausted in logs"}, format="json")
    assert response.status_code == 200, response.json()
    assert response.json()["status"] == "confirmed" and response.json()["decided_by"] == responder.username
    incident.refresh_from_db()
    assert incident.root_cause.startswith(first.title)
    second.refresh_from_db()
    assert second.status == HypothesisStatus.PROPOSED
    entry = incident.timeline.get(kind=EventKind.HYPOTHESIS)
    assert entry.actor == responder.username and entry.data["to"] == "confirmed" and "pool exhausted" in entry.message


def test_rejecting_reranks_the_rest(api, responder, investigated):
    incident, _older, _latest, first, second = investigated
    response = api.as_user(responder).patch(url(incident, f"hypotheses/{first.pk}/"), {"status": "rejected"},
                                            format="json")
    assert response.status_code == 200
    second.refresh_from_db()
    first.refresh_from_db()
    assert second.rank == 1 and first.rank == 2
    assert second.confidence == pytest.approx(0.3 / (1 - 0.6), abs=1e-3)


def test_bad_decisions_are_400_with_a_json_body(api, responder, investigated):
    incident, *_rest, first, _second = investigated
    client = api.as_user(responder)
    for body in ({"status": "maybe"}, {}, {"status": "confirmed", "note": "x" * 1001}):
        response = client.patch(url(incident, f"hypotheses/{first.pk}/"), body, format="json")
        assert response.status_code == 400, body
        assert response.json()["code"] == "invalid" and response.json()["errors"]


def test_a_hypothesis_of_another_incident_is_404(api, responder, investigated):
    other = HypothesisFactory(incident=IncidentFactory())
    response = api.as_user(responder).patch(url(investigated[0], f"hypotheses/{other.pk}/"), {"status": "rejected"},
                                            format="json")
    assert response.status_code == 404


def test_changing_a_decision_is_allowed_and_the_same_decision_again_is_a_no_op(api, responder, investigated):
    incident, *_rest, first, _second = investigated
    client = api.as_user(responder)
    target = url(incident, f"hypotheses/{first.pk}/")
    assert client.patch(target, {"status": "rejected"}, format="json").status_code == 200
    assert client.patch(target, {"status": "rejected"}, format="json").status_code == 200
    assert incident.timeline.filter(kind=EventKind.HYPOTHESIS).count() == 1
    assert client.patch(target, {"status": "confirmed"}, format="json").json()["status"] == "confirmed"
    assert incident.timeline.filter(kind=EventKind.HYPOTHESIS).count() == 2


# -- manage.py investigate ------------------------------------------------------------------------------

def test_investigate_command_runs_one_and_prints_the_summary_and_ranking(investigation_settings, demo_catalog,
                                                                        capsys):
    from incidents import services as incidents

    investigation_settings.PROMETHEUS_URL = ""
    incident = incidents.create_incident(title="Payment down", severity="high",
                                         primary_service=demo_catalog["payment"])
    call_command("investigate", incident.key)
    out = capsys.readouterr().out
    assert f"{incident.key}: investigation run" in out
    assert "scoping" in out and "metrics" in out and "not_configured" in out
    assert "status: complete" in out and "summary:" in out and "ranking:" in out
    run = InvestigationRun.objects.get(incident=incident, trigger=Trigger.MANUAL)
    assert run.status == RunStatus.COMPLETE


@pytest.mark.parametrize("key, message", [("INC-424242", "no incident INC-424242"), ("bogus", "not an incident key")])
def test_investigate_command_refuses_bad_keys_with_one_line(key, message):
    with pytest.raises(CommandError, match=message):
        call_command("investigate", key)
