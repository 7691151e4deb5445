"""External alerts without a catalog service group by their delivery's `groupKey`.

Alertmanager (and Grafana, which embeds it) sends the alerts of one notification group under one
`groupKey`. Two alerts of one group whose service is not in the catalog used to open two
incidents; now they share one, whether they arrive in one delivery or several, and concurrently.
Everything goes through the real intake endpoint (eager tasks here, a real worker in the slow test).
"""
import copy
import json
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests
from django.db import connection
from rest_framework.test import APIClient

from detection import services
from detection.models import Alert, AlertSource, AlertSourceKind, AlertState
from incidents.models import Incident

from ..servers import CeleryWorker, Daphne, server_env

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "alert-payloads"


def payload(name="alertmanager-webhook-v4-firing.json"):
    # The fixture's two alerts name `sloth_service: checkout`, and no test here loads a catalog:
    # their service is unknown, so only the groupKey can tie them together.
    return json.loads((FIXTURES / name).read_text())


def make_source(name="alertmanager", kind=AlertSourceKind.ALERTMANAGER):
    source = AlertSource(name=name, kind=kind)
    token = source.set_new_token()
    source.save()
    return source, token


def post(token, body, kind="alertmanager"):
    return APIClient().post(f"/api/v1/alerts/{kind}", body, format="json", HTTP_AUTHORIZATION=f"Bearer {token}")


def split(body):
    """The delivery's alerts, one delivery each (Alertmanager re-sends a group as it grows)."""
    parts = []
    for alert in body["alerts"]:
        part = copy.deepcopy(body)
        part["alerts"] = [alert]
        parts.append(part)
    return parts


@pytest.mark.django_db
def test_two_alerts_of_one_group_without_a_catalog_service_open_one_incident():
    _, token = make_source()
    response = post(token, payload())
    assert response.status_code == 202, response.content
    alerts = list(Alert.objects.order_by("pk"))
    assert len(alerts) == 2 and {a.state for a in alerts} == {AlertState.FIRING}
    assert {a.service_id for a in alerts} == {None}
    assert {a.group_key for a in alerts} == {payload()["groupKey"]}
    incident = Incident.objects.get()  # before: one incident per alert
    assert set(incident.alerts.values_list("pk", flat=True)) == {a.pk for a in alerts}
    assert incident.severity == "critical"  # the group's highest


@pytest.mark.django_db
def test_alerts_of_one_group_in_separate_deliveries_join_the_first_ones_incident():
    _, token = make_source()
    first, second = split(payload())
    assert post(token, first).status_code == 202
    assert post(token, second).status_code == 202
    assert Incident.objects.count() == 1
    assert Alert.objects.filter(incident=Incident.objects.get()).count() == 2


@pytest.mark.django_db
def test_another_group_opens_its_own_incident():
    _, token = make_source()
    first, second = split(payload())
    second["groupKey"] = '{}:{alertname="SomethingElse"}'
    post(token, first)
    post(token, second)
    assert Incident.objects.count() == 2


@pytest.mark.django_db
def test_the_same_group_key_from_another_sender_is_another_group():
    _, token_a = make_source("am-eu")
    _, token_b = make_source("am-us")
    first, second = split(payload())
    post(token_a, first)
    post(token_b, second)
    assert Incident.objects.count() == 2


@pytest.mark.django_db
def test_a_delivery_without_a_group_key_groups_nothing():
    _, token = make_source()
    first, second = split(payload())
    for body in (first, second):
        del body["groupKey"]
        post(token, body)
    assert Incident.objects.count() == 2
    assert set(Alert.objects.values_list("group_key", flat=True)) == {""}


@pytest.mark.django_db
def test_grafana_deliveries_group_by_their_group_key_too():
    _, token = make_source("grafana", AlertSourceKind.GRAFANA)
    body = payload("grafana-webhook-firing.json")
    other = copy.deepcopy(body)
    other["alerts"][0]["labels"]["namespace"] = "shop-canary"
    other["alerts"][0]["fingerprint"] = "another-series"
    assert post(token, body, "grafana").status_code == 202
    assert post(token, other, "grafana").status_code == 202
    assert Alert.objects.count() == 2
    assert Incident.objects.count() == 1


@pytest.mark.django_db
def test_a_group_key_longer_than_the_column_is_kept_as_its_digest_and_still_groups():
    _, token = make_source()
    first, second = split(payload())
    for body in (first, second):
        body["groupKey"] = "{}:{" + "x" * 500 + "}"
        assert post(token, body).status_code == 202
    keys = set(Alert.objects.values_list("group_key", flat=True))
    assert len(keys) == 1 and keys.pop().startswith("sha256:")
    assert Incident.objects.count() == 1


@pytest.mark.django_db
@pytest.mark.parametrize("group_key, message", [(42, "groupKey must be a string"),
                                                ("a\x00b", "groupKey must not contain NUL characters")])
def test_a_bad_group_key_is_refused_before_202_and_nothing_is_written(group_key, message):
    _, token = make_source()
    body = payload()
    body["groupKey"] = group_key
    response = post(token, body)
    assert response.status_code == 400
    assert message in response.json()["message"]
    assert Alert.objects.count() == 0 and Incident.objects.count() == 0


@pytest.mark.django_db
def test_alerts_of_one_group_share_one_grouping_lock_and_other_groups_do_not():
    source, _ = make_source()
    a = Alert(fingerprint="am:1:a", source=source, name="A", group_key="g1")
    b = Alert(fingerprint="am:1:b", source=source, name="B", group_key="g1")
    c = Alert(fingerprint="am:1:c", source=source, name="C", group_key="g2")
    ungrouped = Alert(fingerprint="am:1:d", source=source, name="D")
    assert services.grouping_lock_key(a) == services.grouping_lock_key(b)
    assert services.grouping_lock_key(a)[0] == services.GROUP_KEY_LOCK
    assert services.grouping_lock_key(a) != services.grouping_lock_key(c)
    assert services.grouping_lock_key(ungrouped)[0] == services.FINGERPRINT_LOCK


def _wait_for(predicate, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    pytest.fail(f"timed out after {timeout}s waiting for {what}")


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_one_groups_alerts_delivered_concurrently_to_real_workers_open_one_incident():
    """20 deliveries at once, half carrying each alert of the group, on 4 worker processes: the
    grouping lock per groupKey leaves one incident (without it, both alerts race to open one)."""
    _, token = make_source()
    first, second = split(payload())
    env = server_env(connection.settings_dict["NAME"])
    web, worker = Daphne(env), CeleryWorker(env, concurrency=4)
    try:
        def deliver(i):
            return requests.post(f"{web.url}/api/v1/alerts/alertmanager", json=(first, second)[i % 2], timeout=30,
                                 headers={"Authorization": f"Bearer {token}"}).status_code

        with ThreadPoolExecutor(max_workers=20) as pool:
            assert list(pool.map(deliver, range(20))) == [202] * 20
        _wait_for(lambda: sorted(Alert.objects.values_list("received_count", flat=True)) == [10, 10], 60,
                  "all 20 deliveries to be applied")
    finally:
        worker.stop()
        web.stop()
    assert Alert.objects.filter(state=AlertState.FIRING).count() == 2
    assert Incident.objects.count() == 1
    assert Alert.objects.filter(incident=Incident.objects.get()).count() == 2
