"""Services write, events after commit, everywhere: the catalog and rule APIs, the admin and the
catalog/seed commands all go through incidents.services and detection.services."""
import functools

import pytest
from django.core.management import CommandError, call_command
from rest_framework.test import APIClient

from detection import services as detection_services
from detection.evaluation import Observation
from detection.models import Alert, AlertState, DetectionRule, RuleKind
from incidents import services
from incidents.models import EventKind, Incident, Service, Severity, Status, Task

from ..factories import ServiceFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def spy(monkeypatch):
    """spy(module, "name") wraps a function and records each call's keyword arguments."""
    calls: dict[str, list[dict]] = {}

    def install(module, name):
        real = getattr(module, name)
        calls[name] = []

        @functools.wraps(real)
        def wrapper(*args, **kwargs):
            calls[name].append(kwargs)
            return real(*args, **kwargs)

        monkeypatch.setattr(module, name, wrapper)
        return calls[name]

    return install


@pytest.fixture
def api_admin(admin_user):
    client = APIClient()
    client.force_authenticate(admin_user)
    return client


@pytest.fixture
def staff(client, admin_user):
    client.force_login(admin_user)
    return client


# --- the catalog API ------------------------------------------------------------------------------

def test_service_api_writes_call_the_catalog_services(api_admin, spy):
    created, updated, deleted = (spy(services, n) for n in ("create_service", "update_service", "delete_service"))
    ServiceFactory(slug="payment")
    response = api_admin.post("/api/v1/services/", {"slug": "checkout", "name": "Checkout", "depends_on": ["payment"]},
                              format="json")
    assert response.status_code == 201, response.content
    assert response.json()["depends_on"] == ["payment"]
    assert api_admin.patch("/api/v1/services/checkout/", {"owner_team": "core"}, format="json").status_code == 200
    assert api_admin.delete("/api/v1/services/checkout/").status_code == 204
    assert len(created) == len(updated) == len(deleted) == 1
    assert not Service.objects.filter(slug="checkout").exists()


def test_deleting_a_service_with_rules_is_409_and_never_deletes_the_rules(api_admin):
    payment = ServiceFactory(slug="payment")
    DetectionRule.objects.create(name="Payment down", kind=RuleKind.KUBERNETES, kubernetes_condition="crash_loop",
                                 service=payment)
    response = api_admin.delete("/api/v1/services/payment/")
    assert response.status_code == 409, response.content
    assert response.json()["code"] == "service_in_use" and "Payment down" in response.json()["message"]
    assert DetectionRule.objects.filter(name="Payment down", service=payment).exists()


# --- the rule API -------------------------------------------------------------------------------

CRASH_LOOP = {"name": "Crash loop", "kind": RuleKind.KUBERNETES, "kubernetes_condition": "crash_loop"}


def test_rule_api_writes_publish_detection_updated_after_commit(api_admin, published, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        response = api_admin.post("/api/v1/rules/", CRASH_LOOP, format="json")
    assert response.status_code == 201, response.content
    rule_id = response.json()["id"]
    assert response.json()["firing"] == 0  # the schema's required field, in the 201 too
    assert published == [("detection.updated", {"rule": rule_id, "name": "Crash loop", "change": "created",
                                                 "enabled": True})]
    with django_capture_on_commit_callbacks(execute=True):
        patched = api_admin.patch(f"/api/v1/rules/{rule_id}/", {"severity": "low"}, format="json")
    assert patched.status_code == 200 and patched.json()["firing"] == 0
    with django_capture_on_commit_callbacks(execute=True):
        assert api_admin.delete(f"/api/v1/rules/{rule_id}/").status_code == 204
    assert [data["change"] for _, data in published] == ["created", "updated", "deleted"]


def test_rule_api_put_is_validated_by_the_service(api_admin):
    rule_id = api_admin.post("/api/v1/rules/", CRASH_LOOP, format="json").json()["id"]
    response = api_admin.put(f"/api/v1/rules/{rule_id}/", {"name": "Crash loop", "kind": "threshold"}, format="json")
    assert response.status_code == 400 and {"query", "threshold"} <= set(response.json()["errors"])


# --- the admin ------------------------------------------------------------------------------------

@pytest.fixture
def incident():
    return services.create_incident(title="Payment errors", severity=Severity.HIGH,
                                    primary_service=ServiceFactory(slug="payment"))


def test_admin_incident_is_view_only(staff, incident):
    url = f"/admin/incidents/incident/{incident.pk}/change/"
    assert staff.get(url).status_code == 200
    assert staff.post(url, {"title": "Edited behind the timeline's back", "severity": "low"}).status_code == 403
    assert staff.get("/admin/incidents/incident/add/").status_code == 403
    incident.refresh_from_db()
    assert incident.title == "Payment errors" and incident.severity == Severity.HIGH


def test_admin_resolve_action_goes_through_the_service(staff, incident, published, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        response = staff.post("/admin/incidents/incident/", {"action": "resolve_selected", "_selected_action": [incident.pk],
                                                             "index": 0})
    assert response.status_code == 302
    incident.refresh_from_db()
    assert incident.status == Status.RESOLVED
    assert incident.timeline.filter(kind=EventKind.STATUS_CHANGE, message="open → resolved: from the admin").exists()
    assert "incident.updated" in [event for event, _ in published]


def _service_form(**fields):
    data = {"slug": "svc", "name": "Svc", "owner_team": "", "tier": "tier-2", "labels": "{}", "runbook_url": "",
            "repository_url": "", "description": ""}
    data.update(fields)
    return data


def test_admin_service_form_goes_through_the_service_and_refuses_a_cycle(staff, spy):
    created = spy(services, "create_service")
    payment = ServiceFactory(slug="payment")
    response = staff.post("/admin/incidents/service/add/", _service_form(slug="checkout", depends_on=[payment.pk]))
    assert response.status_code == 302, response.content
    checkout = Service.objects.get(slug="checkout")
    assert len(created) == 1 and list(checkout.depends_on.values_list("slug", flat=True)) == ["payment"]

    response = staff.post(f"/admin/incidents/service/{payment.pk}/change/",
                          _service_form(slug="payment", name="Payment", depends_on=[checkout.pk]))
    assert response.status_code == 200  # the form again, with the error
    assert "dependency cycle: payment → checkout → payment" in response.content.decode()
    assert not payment.depends_on.exists()


def test_admin_refuses_to_delete_a_service_an_incident_refers_to(staff, incident):
    checkout = ServiceFactory(slug="checkout")
    services.update_incident(incident=incident, affected_services=[incident.primary_service, checkout])
    page = staff.get(f"/admin/incidents/service/{checkout.pk}/delete/")
    assert page.status_code == 200 and "Cannot delete" in page.content.decode()
    staff.post(f"/admin/incidents/service/{checkout.pk}/delete/", {"post": "yes"})
    assert Service.objects.filter(pk=checkout.pk).exists()


def _rule_form(**fields):
    data = {"name": "Crash loop", "kind": "kubernetes", "service": "", "severity": "high", "enabled": "on",
            "description": "", "runbook_url": "", "labels": "{}", "query": "", "comparator": ">", "threshold": "",
            "anomaly_method": "ensemble", "baseline_window_seconds": 3600, "kubernetes_condition": "crash_loop",
            "kubernetes_namespace": "", "kubernetes_selector": "", "for_seconds": 0, "recovery_hold_seconds": 30,
            "evaluation_interval_seconds": 5}
    data.update(fields)
    return {k: v for k, v in data.items() if v is not None}


def test_admin_rule_writes_go_through_the_services(staff, published, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        response = staff.post("/admin/detection/detectionrule/add/", _rule_form())
    assert response.status_code == 302, response.content
    rule = DetectionRule.objects.get()
    detection_services.apply_observations(rule=rule, observations=[Observation({"pod": "p"}, 3.0, True)],
                                          now=rule.created_at)
    assert Alert.objects.get().state == AlertState.FIRING

    with django_capture_on_commit_callbacks(execute=True):  # unticking "enabled" resolves the alert
        response = staff.post(f"/admin/detection/detectionrule/{rule.pk}/change/", _rule_form(enabled=None))
    assert response.status_code == 302, response.content
    assert Alert.objects.get().state == AlertState.RESOLVED

    with django_capture_on_commit_callbacks(execute=True):
        staff.post("/admin/detection/detectionrule/", {"action": "delete_selected", "_selected_action": [rule.pk],
                                                       "post": "yes"})
    assert not DetectionRule.objects.exists() and Alert.objects.get().rule_id is None
    assert [data.get("change") for event, data in published if "change" in data] == ["created", "updated", "deleted"]


def test_admin_disable_action_resolves_the_rules_alerts(staff):
    rule = detection_services.create_rule(**CRASH_LOOP)
    detection_services.apply_observations(rule=rule, observations=[Observation({"pod": "p"}, 3.0, True)],
                                          now=rule.created_at)
    incident = Incident.objects.get()
    staff.post("/admin/detection/detectionrule/", {"action": "disable_selected", "_selected_action": [rule.pk]})
    assert Alert.objects.get().state == AlertState.RESOLVED
    assert incident.timeline.filter(message__endswith="its rule was disabled").exists()


def test_admin_task_edits_go_through_the_services(staff, incident, published, django_capture_on_commit_callbacks):
    task = services.create_task(incident=incident, title="Roll back")
    with django_capture_on_commit_callbacks(execute=True):
        response = staff.post(f"/admin/incidents/task/{task.pk}/change/", {"title": "Roll back", "done": "on",
                                                                           "owner": "", "due_at_0": "", "due_at_1": ""})
    assert response.status_code == 302, response.content
    task.refresh_from_db()
    assert task.done and task.done_at is not None
    assert ("task.updated", {"id": task.pk, "incident": incident.pk, "title": "Roll back", "done": True,
                             "owner": None}) in published
    assert Task.objects.count() == 1


# --- the commands ---------------------------------------------------------------------------------

def test_load_catalog_goes_through_the_services(spy):
    created, dependencies = spy(services, "create_service"), spy(services, "set_service_dependencies")
    call_command("load_catalog", "demo/catalog.yaml", verbosity=0)
    assert len(created) == Service.objects.count() > 0 and dependencies


@pytest.mark.parametrize(
    "text, message",
    [
        ("services:\n  - slug: a\n    depends_on: [a]\n", "a cannot depend on itself"),
        ("services:\n  - slug: a\n    depends_on: [b]\n  - slug: b\n    depends_on: [c]\n  - slug: c\n    depends_on: [a]\n",
         "dependency cycle: a → b → c → a"),
    ],
    ids=["self", "cycle"],
)
def test_load_catalog_refuses_a_cycle_naming_it_and_changes_nothing(tmp_path, text, message):
    path = tmp_path / "catalog.yaml"
    path.write_text(text)
    with pytest.raises(CommandError, match=message):
        call_command("load_catalog", str(path))
    assert not Service.objects.exists()


def test_load_catalog_refuses_a_cycle_through_a_service_already_in_the_database(tmp_path):
    path = tmp_path / "catalog.yaml"
    path.write_text("services:\n  - slug: a\n  - slug: b\n    depends_on: [a]\n")
    call_command("load_catalog", str(path), verbosity=0)
    path.write_text("services:\n  - slug: a\n    depends_on: [b]\n")
    with pytest.raises(CommandError, match="dependency cycle: a → b → a"):
        call_command("load_catalog", str(path))


def test_load_catalog_can_reverse_an_edge_in_one_file(tmp_path):
    path = tmp_path / "catalog.yaml"
    path.write_text("services:\n  - slug: a\n  - slug: b\n    depends_on: [a]\n")
    call_command("load_catalog", str(path), verbosity=0)
    path.write_text("services:\n  - slug: a\n    depends_on: [b]\n  - slug: b\n    depends_on: []\n")
    call_command("load_catalog", str(path), verbosity=0)
    assert list(Service.objects.get(slug="a").depends_on.values_list("slug", flat=True)) == ["b"]
    assert not Service.objects.get(slug="b").depends_on.exists()


def test_seed_detection_rules_goes_through_create_rule(spy, published, django_capture_on_commit_callbacks):
    created = spy(detection_services, "create_rule")
    with django_capture_on_commit_callbacks(execute=True):
        call_command("seed_detection_rules", verbosity=0)
    assert len(created) == DetectionRule.objects.count() > 0
    assert len([e for e, data in published if data.get("change") == "created"]) == len(created)
