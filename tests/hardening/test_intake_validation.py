"""The Alertmanager/Grafana intake validates fully before it answers 202: what it accepted is
applied by the task, and what the task could not apply is refused up front. A retried delivery
counts each alert once; only errors that may pass are retried."""
import json
from datetime import datetime, timedelta, timezone as dt_timezone
from pathlib import Path

import pytest
from django.db import OperationalError
from django.utils import timezone
from rest_framework.test import APIClient

from detection import services, tasks
from detection.intake import parse_webhook
from detection.models import Alert, AlertSource, AlertSourceKind, AlertState
from incidents.models import Incident, TimelineEvent

from ..factories import ServiceFactory

pytestmark = pytest.mark.django_db
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "alert-payloads"


@pytest.fixture
def source():
    ServiceFactory(slug="checkout")
    am = AlertSource(name="alertmanager", kind=AlertSourceKind.ALERTMANAGER)
    token = am.set_new_token()
    am.save()
    am.token = token
    return am


def firing(**changes):
    body = json.loads((FIXTURES / "alertmanager-webhook-v4-firing.json").read_text())
    body["alerts"] = body["alerts"][:1]
    body["alerts"][0].update(changes)
    return body


def post(source, body):
    return APIClient().post("/api/v1/alerts/alertmanager", body, format="json",
                            HTTP_AUTHORIZATION=f"Bearer {source.token}")


def counts():
    return Alert.objects.count(), Incident.objects.count(), TimelineEvent.objects.count()


@pytest.mark.parametrize(
    "mutate, reason",
    [
        (lambda a: a["labels"].update(service="check\x00out"), "must not contain NUL"),
        (lambda a: a["labels"].update({"bad\x00key": "x"}), "must not contain NUL"),
        (lambda a: a.update(annotations={"summary": "oops\x00"}), "must not contain NUL"),
        (lambda a: a.update(fingerprint="ab\x00cd"), "must not contain NUL"),
        (lambda a: a.update(startsAt="2024-05-01T10:00:00+99:00"), "startsAt is not an RFC 3339 time"),
        (lambda a: a.update(startsAt="2024-13-01T10:00:00Z"), "startsAt is not an RFC 3339 time"),
        (lambda a: a.update(startsAt="0001-01-01T00:30:00+05:00"), "startsAt is out of range"),
    ],
)
def test_what_the_worker_could_not_store_is_refused_before_202(source, mutate, reason):
    body = firing()
    mutate(body["alerts"][0])
    before = counts()
    response = post(source, body)
    assert response.status_code == 400, response.content
    assert reason in response.json()["message"]
    assert counts() == before


def test_a_starts_at_offset_beyond_postgres_range_is_accepted_and_stored_in_utc(source):
    # +20:00 is valid RFC 3339; PostgreSQL stores offsets only up to ±15:59. Two hours ago, said at +20:00:
    moment = (timezone.now() - timedelta(hours=2)).replace(microsecond=0)
    local = moment.astimezone(dt_timezone(timedelta(hours=20))).isoformat()
    response = post(source, firing(startsAt=local))
    assert response.status_code == 202, response.content
    alert = Alert.objects.get()
    assert alert.state == AlertState.FIRING and alert.active_since == moment
    assert Incident.objects.get().started_at == moment


def test_an_alert_name_longer_than_an_incident_title_still_opens_the_incident(source):
    body = firing()
    body["alerts"][0]["labels"]["alertname"] = "A" * 280
    assert post(source, body).status_code == 202
    incident = Incident.objects.get()
    assert len(incident.title) == 200 and incident.title.startswith("A" * 100)


def test_a_starts_at_years_ago_opens_the_incident_with_the_oldest_start_allowed(source):
    body = firing(startsAt="2001-01-01T00:00:00Z")
    assert post(source, body).status_code == 202
    incident = Incident.objects.get()
    assert timezone.now() - incident.started_at < timedelta(days=365)
    assert Alert.objects.get().active_since == datetime(2001, 1, 1, tzinfo=dt_timezone.utc)


def test_a_value_beyond_float_range_is_accepted_without_a_value(source):
    body = firing()
    body["alerts"][0]["values"] = {"A": 10**400}
    assert post(source, body).status_code == 202
    assert Alert.objects.get().value is None


def _two_alert_payload():
    body = json.loads((FIXTURES / "alertmanager-webhook-v4-firing.json").read_text())
    assert len(body["alerts"]) == 2
    return body


def test_a_retried_delivery_counts_each_alert_once(source, monkeypatch):
    """The second alert hits a transient database error on the first attempt; the retry must not
    count the first alert again."""
    real = services.on_alert_transition
    failures = {"left": 1}

    def flaky(alert, *args, **kwargs):
        if alert.labels.get("alertname") == _two_alert_payload()["alerts"][1]["labels"]["alertname"] and failures["left"]:
            failures["left"] -= 1
            raise OperationalError("server closed the connection unexpectedly")
        return real(alert, *args, **kwargs)

    monkeypatch.setattr(services, "on_alert_transition", flaky)
    tasks.ingest_external_alerts.apply(args=(source.pk, _two_alert_payload(), "delivery-1"))
    assert failures["left"] == 0  # the failure happened, and the task retried
    assert sorted(Alert.objects.values_list("received_count", flat=True)) == [1, 1]
    assert set(Alert.objects.values_list("state", flat=True)) == {AlertState.FIRING}
    assert Incident.objects.count() == 1


def test_the_same_delivery_applied_twice_changes_nothing_the_second_time(source):
    parsed = parse_webhook(AlertSourceKind.ALERTMANAGER, _two_alert_payload())
    assert services.ingest_external_alerts(source=source, alerts=parsed, delivery="d-1") == 2
    before = counts()
    assert services.ingest_external_alerts(source=source, alerts=parsed, delivery="d-1") == 0
    assert counts() == before
    assert sorted(Alert.objects.values_list("received_count", flat=True)) == [1, 1]
    services.ingest_external_alerts(source=source, alerts=parsed, delivery="d-2")  # a new delivery counts
    assert sorted(Alert.objects.values_list("received_count", flat=True)) == [2, 2]


def test_an_error_that_will_not_pass_is_not_retried_and_the_other_alerts_still_apply(source, monkeypatch):
    real = services.on_alert_transition
    calls = []

    def broken(alert, *args, **kwargs):
        calls.append(alert.name)
        if len(calls) == 1:
            raise ValueError("a bug in applying this one alert")
        return real(alert, *args, **kwargs)

    monkeypatch.setattr(services, "on_alert_transition", broken)
    tasks.ingest_external_alerts.apply(args=(source.pk, _two_alert_payload(), "delivery-2"))
    assert len(calls) == 2  # no retry: each alert was tried once
    assert Alert.objects.filter(state=AlertState.FIRING).count() == 1  # the second one applied
