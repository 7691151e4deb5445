"""The incidents and detection API: per-role permissions on every route, filters and search, and
bad input. The role matrix is checked against the routes the URL modules really mount."""
import json
from datetime import timedelta

import pytest
from django.urls import URLPattern, URLResolver, resolve
from django.utils import timezone
from rest_framework.test import APIClient

from detection.models import Alert, AlertState, DetectionRule, RuleKind
from incidents import services
from incidents.models import Incident, Service, Severity, Status, Task, TimelineEvent
from reliability_studio.access import Role

from ..factories import ServiceFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def world():
    payment = ServiceFactory(slug="payment")
    checkout = ServiceFactory(slug="checkout")
    checkout.depends_on.add(payment)
    incident = services.create_incident(title="Payment errors", severity=Severity.HIGH, primary_service=payment)
    task = services.create_task(incident=incident, title="Write the review")
    return {"incident": incident, "task": task, "payment": payment}


@pytest.fixture
def routes_world(world):
    """The world, plus what the other routes act on: a resolved incident to reopen, a rule, an alert."""
    payment, incident = world["payment"], world["incident"]
    resolved = services.create_incident(title="Payment slow", severity=Severity.LOW, primary_service=payment)
    services.transition_incident(incident=resolved, to=Status.RESOLVED, actor="test")
    rule = DetectionRule.objects.create(name="Crash loop", kind=RuleKind.KUBERNETES, kubernetes_condition="crash_loop",
                                        service=payment)
    alert = Alert.objects.create(fingerprint="rule:test|1", rule=rule, name=rule.name, severity=Severity.HIGH,
                                 service=payment, state=AlertState.FIRING, incident=incident)
    return {**world, "resolved": resolved, "rule": rule, "alert": alert}


RULE = {"name": "Crash loop", "kind": RuleKind.KUBERNETES, "kubernetes_condition": "crash_loop"}

# (method, url template, body, minimum role). Every route of the incidents and detection API
# appears here or in NOT_ROLE_BASED: test_every_mounted_api_route_is_in_the_matrix enumerates them.
ROUTES = [
    ("get", "/api/v1/", None, Role.VIEWER),
    ("get", "/api/v1/services/", None, Role.VIEWER),
    ("get", "/api/v1/services/payment/", None, Role.VIEWER),
    ("get", "/api/v1/services/payment/blast-radius/", None, Role.VIEWER),
    ("post", "/api/v1/services/", {"slug": "new-svc", "name": "New"}, Role.ADMIN),
    ("patch", "/api/v1/services/payment/", {"owner_team": "core"}, Role.ADMIN),
    ("put", "/api/v1/services/payment/", {"slug": "payment", "name": "Payments", "owner_team": "core"}, Role.ADMIN),
    ("delete", "/api/v1/services/checkout/", None, Role.ADMIN),
    ("get", "/api/v1/incidents/", None, Role.VIEWER),
    ("get", "/api/v1/incidents/{id}/", None, Role.VIEWER),
    ("get", "/api/v1/incidents/{id}/timeline/", None, Role.VIEWER),
    ("get", "/api/v1/incidents/{id}/tasks/", None, Role.VIEWER),
    ("get", "/api/v1/incidents/{id}/blast-radius/", None, Role.VIEWER),
    ("post", "/api/v1/incidents/", {"title": "New", "severity": "low"}, Role.RESPONDER),
    ("patch", "/api/v1/incidents/{id}/", {"summary": "s"}, Role.RESPONDER),
    ("post", "/api/v1/incidents/{id}/timeline/", {"message": "hello"}, Role.RESPONDER),
    ("post", "/api/v1/incidents/{id}/tasks/", {"title": "t"}, Role.RESPONDER),
    ("post", "/api/v1/incidents/{id}/acknowledge/", {}, Role.RESPONDER),
    ("post", "/api/v1/incidents/{id}/investigate/", {}, Role.RESPONDER),
    ("post", "/api/v1/incidents/{id}/mitigate/", {}, Role.RESPONDER),
    ("post", "/api/v1/incidents/{id}/resolve/", {}, Role.RESPONDER),
    ("post", "/api/v1/incidents/{resolved}/reopen/", {}, Role.RESPONDER),
    ("get", "/api/v1/tasks/{task}/", None, Role.VIEWER),
    ("patch", "/api/v1/tasks/{task}/", {"done": True}, Role.RESPONDER),
    ("put", "/api/v1/tasks/{task}/", {"incident": "{incident_pk}", "title": "Write it today"}, Role.RESPONDER),
    ("get", "/api/v1/rules/", None, Role.VIEWER),
    ("get", "/api/v1/rules/{rule}/", None, Role.VIEWER),
    ("post", "/api/v1/rules/", {**RULE, "name": "Another crash loop"}, Role.ADMIN),
    ("put", "/api/v1/rules/{rule}/", {**RULE, "severity": "low"}, Role.ADMIN),
    ("patch", "/api/v1/rules/{rule}/", {"enabled": False}, Role.ADMIN),
    ("delete", "/api/v1/rules/{rule}/", None, Role.ADMIN),
    ("get", "/api/v1/alerts/", None, Role.VIEWER),
    ("get", "/api/v1/alerts/{alert}/", None, Role.VIEWER),
]
# Routes whose access is not a role: each with where it is tested.
NOT_ROLE_BASED = {
    ("post", "/api/v1/alerts/alertmanager"): "an alert source's bearer token (tests/detection/test_intake.py)",
    ("post", "/api/v1/alerts/grafana"): "an alert source's bearer token (tests/detection/test_intake.py)",
    ("get", "/api/v1/chaos/"): "demo only (DEMO_ENABLED); roles in tests/security/test_routes.py",
    ("delete", "/api/v1/chaos/"): "demo only (DEMO_ENABLED); roles in tests/security/test_routes.py",
    ("get", "/api/v1/chaos/payment/"): "demo only (DEMO_ENABLED); roles in tests/security/test_routes.py",
    ("post", "/api/v1/chaos/payment/"): "demo only (DEMO_ENABLED); roles in tests/security/test_routes.py",
    ("delete", "/api/v1/chaos/payment/"): "demo only (DEMO_ENABLED); roles in tests/security/test_routes.py",
}
METHODS = ("get", "post", "put", "patch", "delete")
ROLE_ORDER = [Role.VIEWER, Role.RESPONDER, Role.ADMIN]


def _url(template, world):
    return template.format(id=world["incident"].key, task=world["task"].pk, resolved=world["resolved"].key,
                           rule=world["rule"].pk, alert=world["alert"].pk)


def _body(body, world):
    if isinstance(body, dict):
        return {k: world["incident"].pk if v == "{incident_pk}" else v for k, v in body.items()}
    return body


def _norm(route):
    return route.replace("^", "").rstrip("$")  # how the resolver joins regex routes


def _mounted(patterns, prefix=""):
    """(method, route) for every operation the URL patterns serve (format-suffix variants aside)."""
    for pattern in patterns:
        route = prefix + str(pattern.pattern)
        if isinstance(pattern, URLResolver):
            yield from _mounted(pattern.url_patterns, route)
        elif isinstance(pattern, URLPattern) and "format" not in route:
            callback = pattern.callback
            actions = getattr(callback, "actions", None)
            view = getattr(callback, "cls", None) or getattr(callback, "view_class", None)
            methods = actions.keys() if actions else [m for m in METHODS if hasattr(view, m)]
            # DRF adds "head" to a viewset's actions (as GET's mirror) at its first request.
            methods = [m for m in methods if m != "head"]
            for method in methods:
                yield method, _norm(route)


def _route_of(method, url):
    return method, _norm(resolve(url.split("?")[0]).route)


def test_every_mounted_api_route_is_in_the_matrix(routes_world):
    world = routes_world
    from detection.api import urls as detection_urls
    from incidents.api import urls as incident_urls

    mounted = set(_mounted(incident_urls.urlpatterns, "api/v1/")) | set(_mounted(detection_urls.urlpatterns, "api/v1/"))
    listed = [_route_of(method, _url(template, world)) for method, template, _, _ in ROUTES]
    exempt = [_route_of(method, url) for method, url in NOT_ROLE_BASED]
    assert len(set(listed)) == len(listed), "a route is listed twice"
    missing = mounted - set(listed) - set(exempt)
    assert not missing, f"API routes without an entry in ROUTES (or NOT_ROLE_BASED): {sorted(missing)}"
    assert not set(listed) - mounted, "ROUTES names a route that is not mounted"


@pytest.mark.parametrize("method, template, body, required", ROUTES, ids=[f"{m} {u}" for m, u, _, _ in ROUTES])
def test_anonymous_gets_401_everywhere(routes_world, method, template, body, required):
    world = routes_world
    response = getattr(APIClient(), method)(_url(template, world), _body(body, world), format="json")
    assert response.status_code == 401
    assert "message" in response.json()


@pytest.mark.parametrize("method, template, body, required", ROUTES, ids=[f"{m} {u}" for m, u, _, _ in ROUTES])
@pytest.mark.parametrize("role", ROLE_ORDER, ids=lambda r: r.name.lower())
def test_role_matrix(routes_world, make_user, method, template, body, required, role):
    world = routes_world
    client = APIClient()
    client.force_authenticate(make_user(role))
    response = getattr(client, method)(_url(template, world), _body(body, world), format="json")
    if role >= required:
        assert response.status_code < 400, response.content
    else:
        assert response.status_code == 403
        assert response.json()["message"]


def test_user_without_role_is_forbidden(world, make_user):
    client = APIClient()
    client.force_authenticate(make_user(None))
    assert client.get("/api/v1/incidents/").status_code == 403


def test_viewer_resolving_gets_403_and_nothing_changes(world, viewer, api):
    incident = world["incident"]
    response = api.as_user(viewer).post(f"/api/v1/incidents/{incident.pk}/resolve/", {}, format="json")
    assert response.status_code == 403
    incident.refresh_from_db()
    assert incident.status == Status.OPEN


def test_token_auth_works(world, responder):
    from reliability_studio.models import ApiToken

    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Token " + ApiToken.issue(user=responder)[1])
    assert client.get("/api/v1/incidents/").status_code == 200
    client.credentials(HTTP_AUTHORIZATION="Token not-a-token")
    assert client.get("/api/v1/incidents/").status_code == 401


def test_create_and_lifecycle_through_api(world, responder, api):
    client = api.as_user(responder)
    response = client.post(
        "/api/v1/incidents/",
        {"title": "Checkout latency", "severity": "critical", "primary_service": "payment", "summary": "p95 at 3s"},
        format="json",
    )
    assert response.status_code == 201, response.content
    key = response.json()["key"]
    assert response.json()["affected_services"] == ["payment"]
    assert client.post(f"/api/v1/incidents/{key}/acknowledge/", {}, format="json").json()["status"] == "investigating"
    resolved = client.post(f"/api/v1/incidents/{key}/resolve/", {"note": "fixed"}, format="json").json()
    assert resolved["status"] == "resolved" and resolved["mttr_seconds"] is not None
    again = client.post(f"/api/v1/incidents/{key}/resolve/", {}, format="json")
    assert again.status_code == 409
    assert again.json() == {"message": f"{key} is already resolved", "code": "invalid_transition"}
    timeline = client.get(f"/api/v1/incidents/{key}/timeline/").json()
    assert [e["message"] for e in timeline["results"]][-1] == "investigating → resolved: fixed"


def test_filters_and_full_text_search(world, viewer, api):
    now = timezone.now()
    services.create_incident(title="Database connection pool exhausted", severity=Severity.CRITICAL,
                             summary="checkout cannot reach postgres", started_at=now - timedelta(days=3))
    services.create_incident(title="Slow catalog", severity=Severity.LOW)
    client = api.as_user(viewer)

    def titles(query):
        response = client.get("/api/v1/incidents/" + query)
        assert response.status_code == 200, response.content
        return sorted(i["title"] for i in response.json()["results"])

    assert titles("?q=pools") == ["Database connection pool exhausted"]  # stemmed
    assert titles("?q=postgres") == ["Database connection pool exhausted"]  # summary is searched too
    assert titles("?severity=low&severity=high") == ["Payment errors", "Slow catalog"]
    assert titles("?service=payment") == ["Payment errors"]
    assert titles(f"?started_before={(now - timedelta(days=1)).isoformat().replace('+00:00', 'Z')}") == [
        "Database connection pool exhausted"
    ]
    assert titles("?status=open&active=true") == ["Database connection pool exhausted", "Payment errors", "Slow catalog"]


def test_pagination(world, viewer, api):
    for n in range(7):
        services.create_incident(title=f"n{n}", severity=Severity.LOW)
    body = api.as_user(viewer).get("/api/v1/incidents/?page_size=3&page=2").json()
    assert body["count"] == 8 and len(body["results"]) == 3 and body["next"] and body["previous"]


# --- bad input: 400 (or 413) with a JSON message and field errors, nothing written -------------

def _counts():
    return (Incident.objects.count(), TimelineEvent.objects.count(), Task.objects.count(), Service.objects.count())


@pytest.mark.parametrize(
    "body, field",
    [
        ({"title": "x", "severity": "apocalyptic"}, "severity"),
        ({"severity": "high"}, "title"),
        ({"title": ["not", "a", "string"], "severity": "high"}, "title"),
        ({"title": "x" * 201, "severity": "high"}, "title"),
        ({"title": "x", "severity": "high", "primary_service": "no-such-service"}, "primary_service"),
        ({"title": "x", "severity": "high", "labels": "env=prod"}, "labels"),
        ({"title": "x", "severity": "high", "started_at": "yesterday"}, "started_at"),
    ],
)
def test_bad_incident_bodies_get_field_errors_and_write_nothing(world, responder, api, body, field):
    before = _counts()
    response = api.as_user(responder).post("/api/v1/incidents/", body, format="json")
    assert response.status_code == 400
    payload = response.json()
    assert payload["message"] and field in payload["errors"]
    assert _counts() == before


def test_malformed_json_is_400(world, responder, api):
    before = _counts()
    response = api.as_user(responder).post("/api/v1/incidents/", '{"title": "x", "severity":', content_type="application/json")
    assert response.status_code == 400
    assert "JSON parse error" in response.json()["message"]
    assert _counts() == before


def test_oversized_body_is_refused_before_parsing(world, responder, api, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 10_000
    before = _counts()
    body = json.dumps({"title": "x", "severity": "high", "summary": "y" * 20_000})
    response = api.as_user(responder).post("/api/v1/incidents/", body, content_type="application/json")
    assert response.status_code == 413
    assert response.json()["message"] == "Request body is too large."
    assert _counts() == before


def test_oversized_field_is_400(world, responder, api):
    before = _counts()
    body = {"title": "x", "severity": "high", "summary": "y" * 20_001}
    response = api.as_user(responder).post("/api/v1/incidents/", body, format="json")
    assert response.status_code == 400 and "summary" in response.json()["errors"]
    assert _counts() == before


def test_duplicate_fingerprint_is_409(world, responder, api):
    client = api.as_user(responder)
    assert client.post("/api/v1/incidents/", {"title": "a", "severity": "low", "fingerprint": "fp"}, format="json").status_code == 201
    before = _counts()
    response = client.post("/api/v1/incidents/", {"title": "b", "severity": "low", "fingerprint": "fp"}, format="json")
    assert response.status_code == 409 and response.json()["code"] == "duplicate_fingerprint"
    assert _counts() == before


def test_bad_filter_is_400(world, viewer, api):
    response = api.as_user(viewer).get("/api/v1/incidents/?severity=apocalyptic")
    assert response.status_code == 400 and "severity" in response.json()["errors"]


def test_empty_comment_is_400(world, responder, api):
    before = _counts()
    response = api.as_user(responder).post(f"/api/v1/incidents/{world['incident'].pk}/timeline/", {"message": "  "}, format="json")
    assert response.status_code == 400
    assert _counts() == before


def test_unknown_incident_is_404_json(world, viewer, api):
    response = api.as_user(viewer).get("/api/v1/incidents/INC-999999/")
    assert response.status_code == 404 and response.json()["message"]


def test_service_dependency_on_unknown_service_is_400(world, admin_user, api):
    before = _counts()
    response = api.as_user(admin_user).post("/api/v1/services/", {"slug": "x", "name": "X", "depends_on": ["nope"]}, format="json")
    assert response.status_code == 400 and "depends_on" in response.json()["errors"]
    assert _counts() == before


def test_openapi_schema_and_docs(client, viewer):
    client.force_login(viewer)  # behind login (tests/security/test_routes.py checks the refusals)
    schema = client.get("/api/schema/")
    assert schema.status_code == 200
    assert b"/api/v1/incidents/{id}/resolve/" in schema.content
    assert client.get("/api/docs/").status_code == 200
