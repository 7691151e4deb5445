"""Bad input the first fuzzing run found: each of these answered 500 with Django's HTML debug page.
Now every one is a JSON answer in the error shape (or a success), and nothing half-written."""
from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from detection.models import DetectionRule, RuleKind
from incidents import selectors, services
from incidents.models import Incident, Service, Severity, Task
from reliability_studio.access import Role

from ..factories import ServiceFactory

pytestmark = pytest.mark.django_db
NUL = "a\x00b"


@pytest.fixture
def world(admin_user):
    payment = ServiceFactory(slug="payment")
    checkout = ServiceFactory(slug="checkout")
    checkout.depends_on.add(payment)
    incident = services.create_incident(title="Payment errors", severity=Severity.HIGH, primary_service=payment,
                                        affected_services=[checkout])
    return {"incident": incident, "payment": payment, "checkout": checkout}


def client_for(user):
    client = APIClient()
    client.force_authenticate(user)
    return client


def assert_json_error(response, status):
    assert response.status_code == status, response.content
    assert response["Content-Type"].startswith("application/json")
    assert response.json()["message"]


def test_task_created_done_is_201_and_done(world, responder):
    response = client_for(responder).post(f"/api/v1/incidents/{world['incident'].pk}/tasks/",
                                          {"title": "Roll back", "done": True}, format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["done"] is True and body["done_at"] is not None


@pytest.mark.parametrize("role, status", [(Role.VIEWER, 403), (Role.RESPONDER, 200), (Role.ADMIN, 200)])
def test_chaos_service_get_is_for_responders_and_answers_json(world, make_user, control_api, role, status):
    response = client_for(make_user(role)).get("/api/v1/chaos/payment/")
    assert response.status_code == status, response.content
    if status == 200:
        assert response.json() == {"service": "payment", "up": True, "port": 0, "faults": []}


def test_chaos_service_get_unknown_service_is_404_and_unreachable_workload_is_502_json(world, responder, settings,
                                                                                        control_api):
    assert_json_error(client_for(responder).get("/api/v1/chaos/nosuch/"), 404)
    settings.DEMO_CONTROL_URL = "http://127.0.0.1:9"
    assert_json_error(client_for(responder).get("/api/v1/chaos/payment/"), 502)


def _counts():
    return Incident.objects.count(), Task.objects.count(), Service.objects.count(), DetectionRule.objects.count()


@pytest.mark.parametrize(
    "method, url, body, field",
    [
        ("post", "/api/v1/incidents/", {"title": "x", "severity": "low", "primary_service": NUL}, "primary_service"),
        ("post", "/api/v1/incidents/", {"title": "x", "severity": "low", "affected_services": [NUL]}, "affected_services"),
        ("post", "/api/v1/incidents/", {"title": "x", "severity": "low", "commander": NUL}, "commander"),
        ("post", "/api/v1/incidents/", {"title": "x", "severity": "low", "labels": {"env": NUL}}, "labels"),
        ("post", "/api/v1/incidents/", {"title": "x", "severity": "low", "labels": {NUL: "prod"}}, "labels"),
        ("patch", "/api/v1/incidents/{id}/", {"primary_service": NUL}, "primary_service"),
        ("post", "/api/v1/incidents/{id}/tasks/", {"title": "t", "owner": NUL}, "owner"),
        ("post", "/api/v1/services/", {"slug": "new", "name": "New", "depends_on": [NUL]}, "depends_on"),
        ("post", "/api/v1/services/", {"slug": "new", "name": "New", "labels": {"team": NUL}}, "labels"),
        ("post", "/api/v1/rules/", {"name": "r", "kind": "kubernetes", "kubernetes_condition": "crash_loop",
                                    "service": NUL}, "service"),
        ("post", "/api/v1/rules/", {"name": "r", "kind": "kubernetes", "kubernetes_condition": "crash_loop",
                                    "labels": {"a": NUL}}, "labels"),
    ],
)
def test_nul_character_in_a_lookup_or_labels_is_400_with_the_field(world, admin_user, method, url, body, field):
    before = _counts()
    response = getattr(client_for(admin_user), method)(url.format(id=world["incident"].pk), body, format="json")
    assert_json_error(response, 400)
    assert field in response.json()["errors"]
    assert _counts() == before


@pytest.mark.parametrize("offset", ["+20:00", "-18:30", "+15:59"])
def test_started_after_with_any_valid_offset_filters(world, viewer, offset):
    # 2000-01-01T00:00 at a +20:00 offset is still a moment in time: every incident started after it.
    response = client_for(viewer).get("/api/v1/incidents/", {"started_after": f"2000-01-01T00:00:00{offset}"})
    assert response.status_code == 200, response.content
    assert response.json()["count"] == 1


@pytest.mark.parametrize("value", ["2000-01-01T00:00:00+99:00", "2000-13-01T00:00:00Z", "0001-01-01T00:00:00+05:00"])
def test_started_after_that_is_not_a_time_is_400(world, viewer, value):
    response = client_for(viewer).get("/api/v1/incidents/", {"started_after": value})
    assert_json_error(response, 400)
    assert "started_after" in response.json()["errors"]


@pytest.mark.parametrize("slug", ["payment", "checkout"], ids=["primary", "affected"])
def test_deleting_a_service_an_incident_refers_to_is_409_json(world, admin_user, slug):
    response = client_for(admin_user).delete(f"/api/v1/services/{slug}/")
    assert_json_error(response, 409)
    assert response.json()["code"] == "service_in_use" and world["incident"].key in response.json()["message"]
    assert Service.objects.filter(slug=slug).exists()
    assert set(world["incident"].affected_services.values_list("slug", flat=True)) == {"payment", "checkout"}


def test_started_at_centuries_ago_is_refused_with_a_clear_message(world, responder):
    before = _counts()
    old = (timezone.now() - timedelta(days=365 * 200)).isoformat()
    response = client_for(responder).post("/api/v1/incidents/", {"title": "x", "severity": "low", "started_at": old},
                                          format="json")
    assert_json_error(response, 400)
    assert "365 days" in response.json()["errors"]["started_at"][0]
    assert _counts() == before
    patch = client_for(responder).patch(f"/api/v1/incidents/{world['incident'].pk}/", {"started_at": old}, format="json")
    assert_json_error(patch, 400)


def test_started_at_within_the_year_is_accepted(world, responder):
    started = (timezone.now() - timedelta(days=300)).isoformat()
    response = client_for(responder).post("/api/v1/incidents/", {"title": "x", "severity": "low", "started_at": started},
                                          format="json")
    assert response.status_code == 201, response.content


@pytest.mark.parametrize("depends_on, message", [(["self-loop"], "self-loop cannot depend on itself"),
                                                 (["checkout"], "dependency cycle: payment → checkout → payment")])
def test_api_refuses_a_self_dependency_or_a_cycle_naming_it(world, admin_user, depends_on, message):
    client = client_for(admin_user)
    if depends_on == ["self-loop"]:
        ServiceFactory(slug="self-loop")
        response = client.patch("/api/v1/services/self-loop/", {"depends_on": depends_on}, format="json")
    else:
        response = client.patch("/api/v1/services/payment/", {"depends_on": depends_on}, format="json")
    assert_json_error(response, 400)
    assert message in response.json()["errors"]["depends_on"][0]
    assert selectors.dependency_cycle(selectors.dependency_graph_by_slug()) is None


def test_an_unexpected_exception_answers_500_in_the_error_shape(world, viewer, monkeypatch):
    def boom(*args, **kwargs):
        raise RuntimeError("a bug nobody has found yet")

    monkeypatch.setattr(selectors, "incident_blast_radius", boom)
    response = client_for(viewer).get(f"/api/v1/incidents/{world['incident'].pk}/blast-radius/")
    assert response.status_code == 500
    assert response.json() == {"message": "Internal server error.", "code": "server_error"}
    assert b"Traceback" not in response.content and b"<html" not in response.content.lower()


def test_kubernetes_rule_without_service_still_works(world, admin_user):
    # Sanity for the fields above: the same body without the NUL is accepted.
    response = client_for(admin_user).post("/api/v1/rules/", {"name": "crash", "kind": RuleKind.KUBERNETES,
                                                               "kubernetes_condition": "crash_loop"}, format="json")
    assert response.status_code == 201, response.content
