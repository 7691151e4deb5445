"""External alert intake: Alertmanager v4 and Grafana webhooks, tokens, idempotency, bad input."""
import copy
import json
from pathlib import Path

import pytest
from rest_framework.test import APIClient

from detection.models import Alert, AlertSource, AlertSourceKind, AlertState
from incidents.models import Incident, Status, TimelineEvent

from ..factories import ServiceFactory

pytestmark = pytest.mark.django_db
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "alert-payloads"


def payload(name):
    return json.loads((FIXTURES / name).read_text())


@pytest.fixture
def sources():
    ServiceFactory(slug="checkout")
    am = AlertSource(name="alertmanager", kind=AlertSourceKind.ALERTMANAGER)
    am_token = am.set_new_token()
    am.save()
    gf = AlertSource(name="grafana", kind=AlertSourceKind.GRAFANA)
    gf_token = gf.set_new_token()
    gf.save()
    return {"alertmanager": am_token, "grafana": gf_token}


def post(kind, body, token, raw=False):
    client = APIClient()
    headers = {"HTTP_AUTHORIZATION": f"Bearer {token}"} if token else {}
    if raw:
        return client.post(f"/api/v1/alerts/{kind}", body, content_type="application/json", **headers)
    return client.post(f"/api/v1/alerts/{kind}", body, format="json", **headers)


def counts():
    return Alert.objects.count(), Incident.objects.count(), TimelineEvent.objects.count()


def test_alertmanager_firing_then_resolved(sources):
    response = post("alertmanager", payload("alertmanager-webhook-v4-firing.json"), sources["alertmanager"])
    assert response.status_code == 202 and response.json()["accepted"] == 2
    alerts = Alert.objects.order_by("name", "fingerprint")
    assert [a.state for a in alerts] == [AlertState.FIRING, AlertState.FIRING]
    incident = Incident.objects.get()  # both alerts are checkout: one incident
    assert incident.source == "external_alert" and incident.primary_service.slug == "checkout"
    assert incident.severity == "critical"  # highest of critical (page) and warning (ticket)

    post("alertmanager", payload("alertmanager-webhook-v4-resolved.json"), sources["alertmanager"])
    assert set(Alert.objects.values_list("state", flat=True)) == {AlertState.RESOLVED}
    from detection.services import auto_resolve_incidents

    auto_resolve_incidents()
    incident.refresh_from_db()
    assert incident.status == Status.MITIGATED


def test_same_delivery_twice_is_one_alert_and_one_timeline_entry(sources):
    body = payload("alertmanager-webhook-v4-firing.json")
    post("alertmanager", body, sources["alertmanager"])
    before = counts()
    post("alertmanager", body, sources["alertmanager"])
    assert counts() == before
    assert set(Alert.objects.values_list("received_count", flat=True)) == {2}


def test_newer_alertmanager_fields_are_tolerated(sources):
    response = post("alertmanager", payload("alertmanager-webhook-v4-firing-am0.34.json"), sources["alertmanager"])
    assert response.status_code == 202


def test_grafana_webhook(sources):
    assert post("grafana", payload("grafana-webhook-firing.json"), sources["grafana"]).status_code == 202
    alert = Alert.objects.get()
    assert alert.state == AlertState.FIRING and alert.value == pytest.approx(0.04213)
    assert alert.service.slug == "checkout" and alert.severity == "critical"
    post("grafana", payload("grafana-webhook-resolved.json"), sources["grafana"])
    alert.refresh_from_db()
    assert alert.state == AlertState.RESOLVED


@pytest.mark.parametrize("token", [None, "wrong-token", "grafana"])
def test_bad_tokens_get_401_and_write_nothing(sources, token):
    token = sources["grafana"] if token == "grafana" else token  # a valid token of another source kind
    before = counts()
    response = post("alertmanager", payload("alertmanager-webhook-v4-firing.json"), token)
    assert response.status_code == 401
    assert response.json()["message"] and response.headers["WWW-Authenticate"].startswith("Bearer")
    assert counts() == before


def _broken(mutate):
    body = payload("alertmanager-webhook-v4-firing.json")
    mutate(body)
    return body


@pytest.mark.parametrize(
    "body, reason",
    [
        ('{"alerts": [', "JSON parse error"),
        ([1, 2], "must be a JSON object"),
        ({"version": "4"}, "'alerts' must be a non-empty list"),
        (_broken(lambda b: b.update(version="3")), "unsupported Alertmanager webhook version"),
        (_broken(lambda b: b["alerts"][1].update(status="exploded")), "alerts[1].status"),
        (_broken(lambda b: b["alerts"][0].update(labels={"a": 1})), "alerts[0].labels"),
        (_broken(lambda b: b["alerts"][0].update(startsAt="yesterday")), "alerts[0].startsAt"),
    ],
)
def test_malformed_payloads_are_400_with_reason_and_write_nothing(sources, body, reason):
    before = counts()
    raw = isinstance(body, str)
    response = post("alertmanager", body, sources["alertmanager"], raw=raw)
    assert response.status_code == 400
    assert reason in response.json()["message"]
    assert counts() == before


def test_a_bad_alert_in_a_delivery_rejects_the_whole_delivery(sources):
    body = payload("alertmanager-webhook-v4-firing.json")
    body["alerts"].append(copy.deepcopy(body["alerts"][0]) | {"status": None})
    before = counts()
    assert post("alertmanager", body, sources["alertmanager"]).status_code == 400
    assert counts() == before


def test_disabled_source_is_refused(sources):
    AlertSource.objects.filter(kind=AlertSourceKind.ALERTMANAGER).update(enabled=False)
    assert post("alertmanager", payload("alertmanager-webhook-v4-firing.json"), sources["alertmanager"]).status_code == 401
