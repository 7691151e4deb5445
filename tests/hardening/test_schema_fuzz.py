"""The schema says what the API does: the mismatches review found (fast tests), and a bounded,
deterministic schemathesis run over the operations of /api/schema/ this suite hardens, as an admin
and as a viewer: no server error, no response the schema does not describe (slow)."""
from __future__ import annotations

import json
import os

import pytest
from rest_framework.test import APIClient

from detection.evaluation import Observation
from detection import services as detection_services
from detection.models import Alert, AlertSource, AlertSourceKind, DetectionRule, RuleKind
from incidents import services
from incidents.models import Severity
from reliability_studio.access import Role
from reliability_studio.models import ApiToken

from ..factories import ServiceFactory

SCHEMA_CLASS = "incidents.api.schema.AutoSchema"


@pytest.fixture
def schema_doc(db, settings, viewer):
    # The lead sets this as DEFAULT_SCHEMA_CLASS for every app; incidents and detection set it per view.
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_SCHEMA_CLASS": SCHEMA_CLASS}
    client = APIClient()
    client.force_authenticate(viewer)  # the schema is behind login
    response = client.get("/api/schema/", {"format": "json"})
    assert response.status_code == 200
    return json.loads(response.content)


def _resolve(doc, schema):
    while "$ref" in schema:
        schema = doc["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    return schema


def _response_schema(doc, path, method, code):
    return doc["paths"][path][method]["responses"][code]["content"]["application/json"]["schema"]


# --- the mismatches review found ------------------------------------------------------------------

def test_alert_rule_source_and_service_are_nullable_strings(schema_doc):
    properties = _resolve(schema_doc, {"$ref": "#/components/schemas/Alert"})["properties"]
    for name in ("rule", "source", "service"):
        assert properties[name]["type"] == "string" and properties[name].get("nullable") is True, name


def test_rule_firing_is_required_and_present_in_the_201(schema_doc, make_user):
    rule = _resolve(schema_doc, _response_schema(schema_doc, "/api/v1/rules/", "post", "201"))
    assert "firing" in rule["required"]
    client = APIClient()
    client.force_authenticate(make_user(Role.ADMIN))
    created = client.post("/api/v1/rules/", {"name": "crash", "kind": "kubernetes",
                                             "kubernetes_condition": "crash_loop"}, format="json")
    assert created.status_code == 201 and created.json()["firing"] == 0


@pytest.mark.parametrize("path", ["/api/v1/services/{slug}/blast-radius/", "/api/v1/incidents/{id}/blast-radius/",
                                  "/api/v1/incidents/{id}/tasks/"])
def test_bare_list_endpoints_are_documented_as_lists(schema_doc, path, make_user):
    assert _response_schema(schema_doc, path, "get", "200")["type"] == "array"
    params = [p["name"] for p in schema_doc["paths"][path]["get"].get("parameters", []) if p["in"] == "query"]
    assert "page" not in params and "status" not in params  # no pagination or incident filters on them
    payment = ServiceFactory(slug="payment")
    incident = services.create_incident(title="x", severity=Severity.LOW, primary_service=payment)
    client = APIClient()
    client.force_authenticate(make_user(Role.VIEWER))
    assert isinstance(client.get(path.format(slug="payment", id=incident.pk)).json(), list)  # what clients read


@pytest.mark.parametrize(
    "path, method, codes",
    [
        ("/api/v1/incidents/", "post", {"400", "401", "403", "409", "413"}),
        ("/api/v1/incidents/{id}/", "get", {"401", "403", "404"}),
        ("/api/v1/incidents/{id}/resolve/", "post", {"400", "404", "409"}),
        ("/api/v1/incidents/", "get", {"400", "404"}),  # a bad filter; a page past the end
        ("/api/v1/services/{slug}/", "delete", {"404", "409"}),
        ("/api/v1/rules/", "post", {"400", "409"}),
        ("/api/v1/alerts/alertmanager", "post", {"400", "401", "413"}),
        ("/api/v1/chaos/{service}/", "get", {"403", "404", "502", "503"}),
    ],
)
def test_error_responses_are_documented_in_the_error_shape(schema_doc, path, method, codes):
    responses = schema_doc["paths"][path][method]["responses"]
    assert codes <= set(responses)
    for code in codes:
        error = _resolve(schema_doc, responses[code]["content"]["application/json"]["schema"])
        assert error["required"] == ["message"] and set(error["properties"]) == {"message", "code", "errors"}


# --- the fuzzing run ------------------------------------------------------------------------------

EXAMPLES = 20          # per operation, per user, with the path naming real objects
WILD_EXAMPLES = 5      # per operation, per user, with generated path parameters (mostly 404s)
NEGATIVE_EXAMPLES = 10  # per operation, as admin: inputs the schema forbids must get a 4xx, never a 5xx


@pytest.fixture
def fuzz_world(db, settings, control_api):

    from ..factories import UserFactory
    from reliability_studio.access import grant_role

    settings.PROMETHEUS_URL = "http://127.0.0.1:9"  # nothing listens: rule queries are refused, quickly
    settings.TELEMETRY_RETRIES = 0
    settings.TELEMETRY_TIMEOUT_SECONDS = 1
    settings.LOKI_URL = ""
    settings.GRAFANA_URL = ""
    payment, checkout = ServiceFactory(slug="payment"), ServiceFactory(slug="checkout")
    checkout.depends_on.add(payment)
    incident = services.create_incident(title="Payment errors", severity=Severity.HIGH, primary_service=payment)
    task = services.create_task(incident=incident, title="Roll back")
    rule = DetectionRule.objects.create(name="Crash loop", kind=RuleKind.KUBERNETES, kubernetes_condition="crash_loop")
    detection_services.apply_observations(rule=rule, observations=[Observation({"pod": "p"}, 1.0, True)],
                                          now=rule.created_at)
    source = AlertSource(name="am", kind=AlertSourceKind.ALERTMANAGER)
    intake_token = source.set_new_token()
    source.save()
    tokens = {}
    for role in (Role.ADMIN, Role.VIEWER):
        user = UserFactory()
        grant_role(user, role)
        tokens[role.name.lower()] = ApiToken.issue(user=user)[1]
    known = {  # path prefix → the real objects its parameters name
        "/api/v1/incidents/{id}": {"id": incident.pk},
        "/api/v1/incidents/{key}": {"key": incident.key},
        "/api/v1/services/{slug}": {"slug": "payment"},
        "/api/v1/tasks/{id}": {"id": task.pk},
        "/api/v1/rules/{id}": {"id": rule.pk},
        "/api/v1/alerts/{id}": {"id": Alert.objects.get().pk},
        "/api/v1/chaos/{service}": {"service": "payment"},
    }
    return {"tokens": tokens, "intake_token": intake_token, "known": known}


@pytest.fixture
def wsgi_app():
    """The real WSGI app, in process. The test is transactional (every request commits, as in
    production), so a request that fails in the database cannot poison the requests after it."""
    from django.core.wsgi import get_wsgi_application

    return get_wsgi_application()


def _path_parameters(known, path):
    for prefix, values in known.items():
        if path.startswith(prefix):
            names = {part[1:-1] for part in path.split("/") if part.startswith("{")}
            if names <= set(values):
                return {name: values[name] for name in names}
    return None


# The apps this suite hardens; RS_FUZZ_ALL=1 fuzzes every operation of the schema (a report for
# the other apps' owners).
OWN_PREFIXES = ("/api/v1/incidents/{id}", "/api/v1/incidents/", "/api/v1/services/", "/api/v1/tasks/",
                "/api/v1/rules/", "/api/v1/alerts/", "/api/v1/chaos/")


def _owned(path: str) -> bool:
    if os.environ.get("RS_FUZZ_ALL") == "1":
        return True
    if path.startswith("/api/v1/incidents/{key}/"):  # investigation and review (their own app)
        return False
    return path.startswith(OWN_PREFIXES)


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_schemathesis_finds_no_server_error_and_no_schema_violation(schema_doc, fuzz_world, wsgi_app):
    schemathesis = pytest.importorskip("schemathesis")
    from hypothesis import HealthCheck, Phase, given, settings as hypothesis_settings
    from hypothesis.errors import Unsatisfiable
    from schemathesis import GenerationMode, checks as st_checks

    schema = schemathesis.openapi.from_dict(schema_doc)
    schema.app = wsgi_app
    checks = [st_checks.not_a_server_error, st_checks.status_code_conformance, st_checks.content_type_conformance,
              st_checks.response_schema_conformance, st_checks.response_headers_conformance]
    failures: list[str] = []
    calls = 0

    def run(operation, headers, examples, **fixed):
        @hypothesis_settings(max_examples=examples, derandomize=True, database=None, deadline=None,
                             phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
        @given(case=operation.as_strategy(**fixed))
        def fuzz(case):
            nonlocal calls
            calls += 1
            try:
                case.call_and_validate(headers=headers, checks=checks)
            except (Exception, BaseExceptionGroup) as exc:  # collected: one report for the whole run
                failures.append(f"{operation.label} as {headers.get('X-Who')}: {type(exc).__name__}: {str(exc)[:600]}")

        try:
            fuzz()
        except Unsatisfiable:  # negative mode: nothing about this operation can be made invalid
            assert fixed.get("generation_mode") == GenerationMode.NEGATIVE

    for result in schema.get_all_operations():
        operation = result.ok()
        if not _owned(operation.path):
            continue
        intake = operation.path.startswith("/api/v1/alerts/") and operation.method.upper() == "POST" \
            and "{" not in operation.path
        users = [("intake", {"Authorization": f"Bearer {fuzz_world['intake_token']}"})] if intake else [
            (who, {"Authorization": f"Token {token}"}) for who, token in fuzz_world["tokens"].items()]
        for who, headers in users:
            headers = {**headers, "X-Who": who}
            fixed = _path_parameters(fuzz_world["known"], operation.path)
            if fixed is not None:
                run(operation, headers, EXAMPLES, path_parameters=fixed)
                run(operation, headers, WILD_EXAMPLES)
            else:
                run(operation, headers, EXAMPLES)
            if who == "admin" or intake:
                run(operation, headers, NEGATIVE_EXAMPLES, generation_mode=GenerationMode.NEGATIVE,
                    **({"path_parameters": fixed} if fixed is not None else {}))
    assert calls > 1000
    assert not failures, f"{len(failures)} failure(s):\n" + "\n\n".join(failures)
