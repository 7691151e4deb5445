"""Every URL route (from the resolver) and every WebSocket route (from the ASGI application), requested
as anonymous, viewer, responder and admin, against the matrix below. A route without an entry fails
`test_every_route_has_an_entry`: whoever adds a route decides who may use it.

The matrix maps a route pattern to {method: who may use it}:
  public     anyone, signed in or not
  viewer / responder / admin   that role and above (anonymous: login redirect or 401; below: 403)
  token      an alerting system's bearer token, never a session (every role refused without it)
  nobody     refused to everyone (e.g. adding alerts in the admin: only detection writes them)
Refused means 401/403, a redirect to a login page, or 405 where Django refuses the method before the
role (never a 2xx/3xx elsewhere, never a 5xx). Writes are sent with an empty body: a permitted role
gets past the permission check (and then a 400/409/422, or the write), a refused one must not.
Path parameters name real objects made below; DRF's format-suffix twins (`.json`) are requested
with the same expectations as their route.
"""
from __future__ import annotations

import re

import pytest
from asgiref.sync import async_to_sync
from channels.testing import WebsocketCommunicator
from django.apps import apps as django_apps
from django.contrib import admin
from django.contrib.contenttypes.models import ContentType
from django.urls import URLPattern, URLResolver, get_resolver
from django.utils import timezone
from rest_framework.test import APIClient

from detection import services as detection_services
from detection.evaluation import Observation
from detection.models import Alert, AlertSource, AlertSourceKind, DetectionRule, RuleKind
from incidents import services
from incidents.models import Severity
from notifications import signing
from notifications.models import (Delivery, DestinationKind, EscalationPolicy, EscalationStep, QuietHours, Route,
                                  ScheduledEscalation)
from notifications import services as notification_services
from reliability_studio.access import Role
from reliability_studio.models import ApiToken
from remediation.models import Action, AuditRecord, Runbook, Switchboard
from slos.models import SLO, IncidentBudgetImpact, SLOSnapshot

from ..factories import ServiceFactory, UserFactory
from ..investigation.factories import ChangeFactory, EvidenceFactory, HypothesisFactory, InvestigationRunFactory

pytestmark = pytest.mark.django_db

PUBLIC, VIEWER, RESPONDER, ADMIN, TOKEN, NOBODY = "public", "viewer", "responder", "admin", "token", "nobody"
ROLES = ("anonymous", "viewer", "responder", "admin")
RANK = {PUBLIC: 0, VIEWER: 1, RESPONDER: 2, ADMIN: 3, NOBODY: 4, TOKEN: 4}

LIST_RW = {"GET": VIEWER, "POST": ADMIN}
DETAIL_RW = {"GET": VIEWER, "PUT": ADMIN, "PATCH": ADMIN, "DELETE": ADMIN}
INCIDENT = "api/v1/^incidents/(?P<pk>(?i:INC-)?\\d+)"

MATRIX: dict[str, dict[str, str]] = {
    # probes (/metrics takes a bearer token when METRICS_TOKEN is set: test_probes.py)
    "healthz": {"GET": PUBLIC},
    "readyz": {"GET": PUBLIC},
    "metrics": {"GET": PUBLIC},
    "accounts/login/": {"GET": PUBLIC},
    "accounts/logout/": {"POST": PUBLIC},
    "api/auth/login/": {"GET": PUBLIC},
    "api/auth/logout/": {"POST": PUBLIC},
    # schema and docs: behind login
    "api/schema/": {"GET": VIEWER},
    "api/docs/": {"GET": VIEWER},
    "api/redoc/": {"GET": VIEWER},
    # incidents API
    "api/v1/": {"GET": VIEWER},
    "api/v1/^services/$": LIST_RW,
    "api/v1/^services/(?P<slug>[-a-zA-Z0-9_]+)/$": DETAIL_RW,
    "api/v1/^services/(?P<slug>[-a-zA-Z0-9_]+)/blast-radius/$": {"GET": VIEWER},
    "api/v1/^incidents/$": {"GET": VIEWER, "POST": RESPONDER},
    f"{INCIDENT}/$": {"GET": VIEWER, "PATCH": RESPONDER},
    f"{INCIDENT}/acknowledge/$": {"POST": RESPONDER},
    f"{INCIDENT}/blast-radius/$": {"GET": VIEWER},
    f"{INCIDENT}/investigate/$": {"POST": RESPONDER},
    f"{INCIDENT}/mitigate/$": {"POST": RESPONDER},
    f"{INCIDENT}/reopen/$": {"POST": RESPONDER},
    f"{INCIDENT}/resolve/$": {"POST": RESPONDER},
    f"{INCIDENT}/tasks/$": {"GET": VIEWER, "POST": RESPONDER},
    f"{INCIDENT}/timeline/$": {"GET": VIEWER, "POST": RESPONDER},
    "api/v1/^tasks/(?P<pk>[^/.]+)/$": {"GET": VIEWER, "PUT": RESPONDER, "PATCH": RESPONDER},
    # detection API
    "api/v1/alerts/alertmanager": {"POST": TOKEN},
    "api/v1/alerts/grafana": {"POST": TOKEN},
    "api/v1/chaos/": {"GET": RESPONDER, "DELETE": ADMIN},
    "api/v1/chaos/<slug:service>/": {"GET": RESPONDER, "POST": ADMIN, "DELETE": ADMIN},
    "api/v1/^rules/$": LIST_RW,
    "api/v1/^rules/(?P<pk>[^/.]+)/$": DETAIL_RW,
    "api/v1/^alerts/$": {"GET": VIEWER},
    "api/v1/^alerts/(?P<pk>[^/.]+)/$": {"GET": VIEWER},
    # notifications API
    "api/v1/^notifications/destinations/$": LIST_RW,
    "api/v1/^notifications/destinations/(?P<pk>[^/.]+)/$": DETAIL_RW,
    "api/v1/^notifications/destinations/(?P<pk>[^/.]+)/test/$": {"POST": ADMIN},
    "api/v1/^notifications/routes/$": LIST_RW,
    "api/v1/^notifications/routes/(?P<pk>[^/.]+)/$": DETAIL_RW,
    "api/v1/^notifications/quiet-hours/$": LIST_RW,
    "api/v1/^notifications/quiet-hours/(?P<pk>[^/.]+)/$": DETAIL_RW,
    "api/v1/^notifications/escalation-policies/$": LIST_RW,
    "api/v1/^notifications/escalation-policies/(?P<pk>[^/.]+)/$": DETAIL_RW,
    "api/v1/^notifications/deliveries/$": {"GET": VIEWER},
    "api/v1/^notifications/deliveries/(?P<pk>[^/.]+)/$": {"GET": VIEWER},
    "api/v1/^notifications/escalations/$": {"GET": VIEWER},
    # investigation API
    "api/v1/^incidents/(?P<key>[^/]+)/investigation/$": {"GET": VIEWER, "POST": RESPONDER},
    "api/v1/^incidents/(?P<key>[^/]+)/investigation/hypotheses/(?P<pk>\\d+)/$": {"GET": VIEWER, "PATCH": RESPONDER},
    "api/v1/changes/": {"GET": VIEWER, "POST": RESPONDER},
    "api/v1/^incidents/(?P<key>[^/]+)/review/$": {"GET": VIEWER, "PUT": RESPONDER},
    # remediation API
    "api/v1/remediation/kill-switch/": {"GET": VIEWER, "POST": ADMIN},
    "api/v1/^remediation/runbooks/$": {"GET": VIEWER},
    "api/v1/^remediation/runbooks/(?P<name>[^/.]+)/$": {"GET": VIEWER},
    "api/v1/^remediation/actions/$": {"GET": VIEWER, "POST": RESPONDER},
    "api/v1/^remediation/actions/(?P<pk>[^/.]+)/$": {"GET": VIEWER},
    "api/v1/^remediation/actions/(?P<pk>[^/.]+)/approve/$": {"POST": RESPONDER},
    "api/v1/^remediation/actions/(?P<pk>[^/.]+)/cancel/$": {"POST": RESPONDER},
    "api/v1/^remediation/actions/(?P<pk>[^/.]+)/preview/$": {"POST": RESPONDER},
    "api/v1/^remediation/actions/(?P<pk>[^/.]+)/request/$": {"POST": RESPONDER},
    "api/v1/^remediation/audit/$": {"GET": VIEWER},
    "api/v1/^remediation/audit/(?P<pk>[^/.]+)/$": {"GET": VIEWER},
    # SLO API
    "api/v1/^slos/$": LIST_RW,
    "api/v1/^slos/openslo/$": {"GET": VIEWER},
    "api/v1/^slos/import/$": {"POST": ADMIN},
    "api/v1/^slos/rules/$": {"GET": VIEWER},
    "api/v1/^slos/(?P<pk>[^/.]+)/$": DETAIL_RW,
    "api/v1/^slos/(?P<pk>[^/.]+)/budget/$": {"GET": VIEWER},
    "api/v1/^slos/(?P<pk>[^/.]+)/history/$": {"GET": VIEWER},
    "api/v1/^slos/(?P<pk>[^/.]+)/incidents/$": {"GET": VIEWER},
    "api/v1/^slos/(?P<pk>[^/.]+)/openslo/$": {"GET": VIEWER},
    "api/v1/^slos/(?P<pk>[^/.]+)/rules/$": {"GET": VIEWER},
    # control-room pages
    "": {"GET": VIEWER},
    "services/": {"GET": VIEWER},
    "incidents/<int:pk>/": {"GET": VIEWER},
    "incidents/<int:pk>/review/": {"GET": VIEWER},
    "incidents/<int:pk>/regions/<slug:region>/": {"GET": VIEWER},
    "incidents/<int:pk>/actions/<slug:action>/": {"POST": RESPONDER},
    "incidents/<int:pk>/comments/": {"POST": RESPONDER},
    "incidents/<int:pk>/tasks/": {"POST": RESPONDER},
    "incidents/<int:pk>/tasks/<int:task_id>/toggle/": {"POST": RESPONDER},
    "slos/": {"GET": VIEWER},
    "slos/regions/list/": {"GET": VIEWER},
    "slos/new/": {"GET": ADMIN, "POST": ADMIN},
    "slos/<int:pk>/": {"GET": VIEWER},
    "slos/<int:pk>/edit/": {"GET": ADMIN, "POST": ADMIN},
    "slos/<int:pk>/regions/<slug:region>/": {"GET": VIEWER},
    "detection/": {"GET": VIEWER},
    "detection/regions/<slug:region>/": {"GET": VIEWER},
    "detection/fire-drill/": {"POST": ADMIN},
    "detection/fire-drill/recover/": {"POST": ADMIN},
    # the signed link shows a confirm page to whoever holds it; acknowledging takes a responder
    "notifications/ack/<str:token>/": {"GET": PUBLIC, "POST": RESPONDER},
    "investigation/incidents/<int:pk>/rerun/": {"POST": RESPONDER},
    "investigation/incidents/<int:pk>/hypotheses/<int:hypothesis_id>/decide/": {"POST": RESPONDER},
    "investigation/incidents/<int:pk>/review/sections/": {"POST": RESPONDER},
    "investigation/incidents/<int:pk>/review/regenerate/": {"POST": RESPONDER},
    "investigation/incidents/<int:pk>/review.md": {"GET": VIEWER},
    "remediation/actions/<int:pk>/<str:verb>/": {"POST": RESPONDER},
    "remediation/audit/": {"GET": VIEWER},
    # the Django admin: the admin role (staff); the site's own pages
    "admin/": {"GET": ADMIN},
    "admin/login/": {"GET": PUBLIC},
    "admin/logout/": {"POST": PUBLIC},
    "admin/password_change/": {"GET": ADMIN},
    "admin/password_change/done/": {"GET": ADMIN},
    "admin/autocomplete/": {"GET": NOBODY},  # no admin uses autocomplete_fields: refused for any field
    "admin/jsi18n/": {"GET": ADMIN},
    "admin/r/<path:content_type_id>/<path:object_id>/": {"GET": ADMIN},
    "admin/auth/user/<id>/password/": {"GET": ADMIN},
    "admin/notifications/destination/<int:pk>/test/": {"POST": ADMIN},
    "admin/(?P<url>.*)$": {"GET": ADMIN},  # the catch-all: a login redirect, or 404 for staff
}
# Each registered model's admin pages: changelist, add, change, history, delete and the bare object
# URL (a redirect to change). Per page the admin role, except where the model admin refuses everyone.
ADMIN_PAGES = ("", "add/", "<path:object_id>/history/", "<path:object_id>/delete/", "<path:object_id>/change/",
               "<path:object_id>/")
READ_ONLY = {"add/": NOBODY, "<path:object_id>/delete/": NOBODY}  # rows only the services write
SUPERUSER_ONLY = {page: NOBODY for page in ADMIN_PAGES}  # no role carries these permissions
ADMIN_MODELS: dict[str, dict[str, str]] = {
    "auth.group": {}, "auth.user": {},
    # django-axes' lockout records: superusers only (access.ADMIN_APPS does not list axes)
    "axes.accessattempt": SUPERUSER_ONLY, "axes.accesslog": SUPERUSER_ONLY, "axes.accessfailurelog": SUPERUSER_ONLY,
    "reliability_studio.apitoken": {},
    "incidents.service": {}, "incidents.incident": READ_ONLY, "incidents.task": {"<path:object_id>/delete/": NOBODY},
    "slos.slo": {}, "slos.incidentbudgetimpact": {"add/": NOBODY}, "slos.slosnapshot": {"add/": NOBODY},
    "detection.detectionrule": {}, "detection.alertsource": {}, "detection.alert": {"add/": NOBODY},
    "investigation.investigationrun": READ_ONLY, "investigation.evidence": READ_ONLY,
    "investigation.hypothesis": READ_ONLY, "investigation.change": {},
    "remediation.runbook": {}, "remediation.action": READ_ONLY, "remediation.auditrecord": READ_ONLY,
    "remediation.switchboard": READ_ONLY,  # its one row exists: changed, never added or deleted
    "notifications.destination": {}, "notifications.route": {}, "notifications.quiethours": {},
    "notifications.escalationpolicy": {}, "notifications.delivery": {"add/": NOBODY},
    "notifications.scheduledescalation": {"add/": NOBODY},
}
if "authtoken" in {m._meta.app_label for m in admin.site._registry}:
    # DRF's clear-text token admin, while rest_framework.authtoken is installed: no role may use it
    # (access.ADMIN_APPS no longer lists authtoken; API tokens are reliability_studio.apitoken).
    ADMIN_MODELS["authtoken.tokenproxy"] = SUPERUSER_ONLY
WEBSOCKETS = {"ws/incidents/": VIEWER, "ws/incidents/<int:incident_id>/": VIEWER}

FORMAT_SUFFIX = re.compile(r"(\\\.\(\?P<format>\[a-z0-9\]\+\)/\?\$|<drf_format_suffix:format>)$")


def _walk(patterns, prefix=""):
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            yield from _walk(pattern.url_patterns, prefix + str(pattern.pattern))
        elif isinstance(pattern, URLPattern):
            yield prefix + str(pattern.pattern)


def enumerated_routes() -> set[str]:
    return set(_walk(get_resolver().url_patterns))


def _base_of(route: str) -> str:
    """A format-suffix twin → its route (`…/(?P<pk>…)\\.(?P<format>…)/?$` → `…/(?P<pk>…)/$`)."""
    if route.endswith("<drf_format_suffix:format>"):
        return route.removesuffix("<drf_format_suffix:format>")
    return FORMAT_SUFFIX.sub("/$", route)


def admin_matrix() -> dict[str, dict[str, str]]:
    routes = {}
    for label, overrides in ADMIN_MODELS.items():
        app, model = label.split(".")
        for page in ADMIN_PAGES:
            routes[f"admin/{app}/{model}/{page}"] = {"GET": overrides.get(page, ADMIN)}
    return routes


def full_matrix() -> dict[str, dict[str, str]]:
    return {**MATRIX, **admin_matrix()}


def _app_index_route(route: str) -> bool:
    return route.startswith("admin/^(?P<app_label>")


def test_every_route_has_an_entry():
    enumerated = {_base_of(r) for r in enumerated_routes() if not _app_index_route(r)}
    matrix = set(full_matrix())
    assert enumerated - matrix == set(), "routes without an entry in MATRIX / ADMIN_MODELS"
    assert matrix - enumerated == set(), "entries for routes that no longer exist"
    assert sum(1 for r in enumerated_routes() if _app_index_route(r)) == 1  # admin/<app_label>/: ADMIN below


def websocket_routes() -> set[str]:
    from reliability_studio.asgi import application

    app = application.application_mapping["websocket"]
    while not hasattr(app, "routes"):
        app = getattr(app, "application", None) or app.inner
    return {str(route.pattern) for route in app.routes}


def test_every_websocket_route_has_an_entry():
    assert websocket_routes() == set(WEBSOCKETS)


# --- the objects path parameters name ----------------------------------------------------------

def make_admin_only_rows():
    """Rows of the models only the admin shows (lockout records; DRF's tokens while installed)."""
    if django_apps.is_installed("axes"):
        seen = {"user_agent": "test", "ip_address": "127.0.0.1", "username": "someone", "http_accept": "*/*",
                "path_info": "/accounts/login/"}
        django_apps.get_model("axes", "AccessAttempt").objects.create(**seen, get_data="", post_data="",
                                                                       failures_since_start=1)
        django_apps.get_model("axes", "AccessFailureLog").objects.create(**seen)
    if django_apps.is_installed("rest_framework.authtoken"):
        django_apps.get_model("authtoken", "Token").objects.create(user=UserFactory())



@pytest.fixture
def world(settings, tmp_path):
    # Writes that are permitted may reach out: make every source refuse at once, on loopback.
    settings.PROMETHEUS_URL = "http://127.0.0.1:9"
    settings.TELEMETRY_RETRIES = 0
    settings.TELEMETRY_TIMEOUT_SECONDS = 1
    settings.LOKI_URL = settings.TEMPO_URL = settings.GRAFANA_URL = ""
    settings.DEMO_CONTROL_URL = "http://127.0.0.1:9"
    settings.NOTIFICATIONS_ALLOW_LOOPBACK = True
    settings.REMEDIATION_KILL_SWITCH = True  # nothing executes, whoever is allowed to ask
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
    destination = notification_services.save_destination(
        name="hook", kind=DestinationKind.WEBHOOK, url="http://127.0.0.1:9/hook", secret="0123456789abcdef0123")
    route = Route.objects.create(name="everything")
    route.destinations.set([destination])
    quiet = QuietHours.objects.create(team="payments", start="22:00", end="06:00")
    policy = EscalationPolicy.objects.create(name="page")
    step = EscalationStep.objects.create(policy=policy, position=1, delay_seconds=60)
    ScheduledEscalation.objects.create(incident=incident, step=step, level=1, due_at=timezone.now())
    delivery = Delivery.objects.create(incident=incident, destination=destination, destination_kind=destination.kind,
                                       event="opened", event_key="opened:1")
    run = InvestigationRunFactory(incident=incident)
    hypothesis = HypothesisFactory(incident=incident, run=run, service="payment")
    runbook = Runbook.objects.create(name="recover", title="Recover", steps=[])
    action = Action.objects.create(incident=incident, runbook=runbook, runbook_name="recover", step_name="recover",
                                   kind="demo.recover", target="demo payment", params={"service": "payment"})
    audit = AuditRecord.objects.create(actor="system", event="proposed", action_id=action.pk)
    slo = SLO.objects.create(service=payment, name="Availability", objective=99.9, selector='service="payment"')
    EvidenceFactory(run=run)
    ChangeFactory(service=payment)
    now = timezone.now()
    SLOSnapshot.objects.create(slo=slo, at=now, status="healthy")
    IncidentBudgetImpact.objects.create(incident=incident, slo=slo, start=now, end=now)
    Switchboard.objects.get_or_create(id=1)
    ApiToken.issue(user=UserFactory(), name="ci")
    make_admin_only_rows()
    from detection.views import REGIONS as DETECTION_REGIONS
    from slos.views import DETAIL_REGIONS

    values = {
        "slug": "payment", "service": "payment", "key": incident.key, "name": runbook.name,
        "task_id": task.pk, "hypothesis_id": hypothesis.pk, "action": "acknowledge", "verb": "approve",
        "format": "json", "id": 1, "url": "nothing-here/",
        "token": signing.make_ack_token(incident_id=incident.pk, destination_id=destination.pk, recipient="oncall"),
    }
    pk_by_prefix = [  # the first prefix that matches names the object behind <pk>
        ("api/v1/^incidents/(?P<key>", hypothesis.pk), ("api/v1/^incidents/", incident.pk), ("api/v1/^tasks/", task.pk),
        ("api/v1/^rules/", rule.pk), ("api/v1/^alerts/", Alert.objects.get().pk),
        ("api/v1/^notifications/destinations/", destination.pk), ("api/v1/^notifications/routes/", route.pk),
        ("api/v1/^notifications/quiet-hours/", quiet.pk), ("api/v1/^notifications/escalation-policies/", policy.pk),
        ("api/v1/^notifications/deliveries/", delivery.pk), ("api/v1/^remediation/actions/", action.pk),
        ("remediation/actions/", action.pk), ("api/v1/^remediation/audit/", audit.pk), ("api/v1/^slos/", slo.pk),
        ("slos/", slo.pk), ("admin/notifications/destination/", destination.pk), ("", incident.pk),
    ]
    regions = {"incidents/": "timeline", "slos/": next(iter(DETAIL_REGIONS)), "detection/": next(iter(DETECTION_REGIONS))}
    return {"values": values, "pk_by_prefix": pk_by_prefix, "regions": regions, "intake_token": intake_token,
            "incident": incident, "source": source}


_PARAM = re.compile(r"<(?:(?P<conv>\w+):)?(?P<name>\w+)>|\(\?P<(?P<rname>\w+)>(?:[^()]|\([^()]*\))*\)")


def concrete_path(route: str, world) -> str:
    """The route with its parameters filled by real objects."""
    values = dict(world["values"])
    values["pk"] = next(pk for prefix, pk in world["pk_by_prefix"] if route.startswith(prefix))
    values["region"] = next((r for prefix, r in world["regions"].items() if route.startswith(prefix)), "")
    if route.startswith("admin/"):
        parts = route.split("/")
        if parts[1] == "r":
            ct = ContentType.objects.get_for_model(world["incident"])
            values.update(content_type_id=ct.pk, object_id=world["incident"].pk)
        elif "<path:object_id>" in route or "<id>" in route:
            model = next((m for m in admin.site._registry if (m._meta.app_label, m._meta.model_name) == tuple(parts[1:3])),
                         None)
            row = model._default_manager.order_by("pk").first()
            assert row is not None, f"no {model._meta.label} row to name in {route}"
            values["object_id"] = values["id"] = row.pk

    def fill(match):
        return str(values[match.group("name") or match.group("rname")])

    path = _PARAM.sub(fill, route)
    path = path.replace("^", "").replace("$", "").replace("\\.", ".").replace("/?", "/")
    return "/" + path


# --- requests as each role ---------------------------------------------------------------------

@pytest.fixture(autouse=True)
def fast_passwords(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # users only, no logins


@pytest.fixture
def clients(make_user):
    made = {"anonymous": APIClient()}
    for role in (Role.VIEWER, Role.RESPONDER, Role.ADMIN):
        client = APIClient()
        client.user = make_user(role)
        client.force_login(client.user)
        made[role.name.lower()] = client
    return made


def send(client, method: str, path: str):
    call = getattr(client, method.lower())
    if method == "GET":
        return call(path)
    return call(path, {}, format="json")


def refused(response, route: str, role: str) -> bool:
    if response.status_code in (401, 403):
        return True
    if route.endswith("logout/"):
        return False  # logging out redirects to the login page: that is its answer, not a refusal
    if response.status_code in (301, 302):
        location = response["Location"]
        return location.startswith("/accounts/login/") or location.startswith("/admin/login/")
    return False


def _expected_allowed(who: str, role: str) -> bool:
    return RANK[who] <= ROLES.index(role)


def _order(case):
    route, method = case
    return (method == "DELETE", route.startswith("admin/"), route, method)  # deletions last


CASES = sorted(((route, method) for route, methods in full_matrix().items() for method in methods), key=_order)


def check_case(route: str, method: str, world, clients) -> str | None:
    """None when every role got what the matrix says, else what went wrong."""
    who = full_matrix()[route][method]
    path = concrete_path(route, world)
    logout = route.endswith("logout/")
    outcomes = {}
    for role in ROLES:
        client = clients[role]
        if logout:  # logging out must not end the session the other cases use
            client = APIClient()
            if role != "anonymous":
                client.force_login(clients[role].user)
        response = send(client, method, path)
        if route.startswith("admin/") and response.status_code == 302 and not refused(response, route, role):
            response = client.get(response["Location"])  # the bare object URL: a redirect to its change page
        if response.status_code >= 500 and response.status_code not in (502, 503):
            return f"{method} {path} as {role}: {response.status_code}"
        outcomes[role] = "allowed" if not refused(response, route, role) else "refused"
        if method == "DELETE" and outcomes[role] == "allowed":
            break  # it is gone now; higher roles hold this one's rights
    expected = {role: "allowed" if _expected_allowed(who, role) else "refused" for role in outcomes}
    if outcomes != expected:
        return f"{method} {path} ({who}): {outcomes}"
    return None


def test_every_route_answers_each_role_as_the_matrix_says(world, clients):
    """One world for all cases (the permitted writes change it, which the refusals must not notice)."""
    wrong = [problem for route, method in CASES if (problem := check_case(route, method, world, clients))]
    assert wrong == [], "\n".join(wrong)


def test_format_suffix_twins_answer_like_their_route(world, clients):
    twins = sorted(r for r in enumerated_routes() if _base_of(r) != r and not r.endswith("<drf_format_suffix:format>"))
    assert twins
    for twin in twins:
        path = concrete_path(twin, world)
        assert path.endswith(".json/") or path.endswith(".json"), path
        assert refused(send(clients["anonymous"], "GET", path), twin, "anonymous"), path
        assert not refused(send(clients["admin"], "GET", path), twin, "admin"), path


def test_admin_app_index_is_for_the_admin_role(clients):
    for role in ROLES:
        response = clients[role].get("/admin/incidents/")
        assert refused(response, "admin/", role) == (role != "admin"), (role, response.status_code)


def test_the_intake_accepts_its_token_and_no_session(world, clients):
    payload = {"version": "4", "status": "firing", "receiver": "rs", "groupKey": "{}:{}", "alerts": [
        {"status": "firing", "labels": {"alertname": "HighErrorRate", "service": "payment"},
         "startsAt": timezone.now().isoformat(), "fingerprint": "abc"}]}
    for role in ROLES:  # a session, even an admin's, is not an alerting system
        assert clients[role].post("/api/v1/alerts/alertmanager", payload, format="json").status_code == 401
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {world['intake_token']}")
    assert client.post("/api/v1/alerts/alertmanager", payload, format="json").status_code == 202


def test_a_user_without_a_role_is_refused_everywhere_a_role_is_needed(world, make_user):
    client = APIClient()
    client.force_login(make_user(None))
    for route, methods in MATRIX.items():
        if methods.get("GET") in (VIEWER, RESPONDER, ADMIN):
            path = concrete_path(route, world)
            assert refused(client.get(path), route, "none"), path


# --- WebSockets ----------------------------------------------------------------------------------

def _ws_connect(path: str, client=None):
    from reliability_studio.asgi import application

    headers = [(b"origin", b"http://127.0.0.1"), (b"host", b"127.0.0.1")]
    if client is not None:
        headers.append((b"cookie", f"sessionid={client.cookies['sessionid'].value}".encode()))

    async def attempt():
        communicator = WebsocketCommunicator(application, path, headers=headers)
        connected, _ = await communicator.connect(timeout=5)
        await communicator.disconnect()
        return connected

    return async_to_sync(attempt)()


@pytest.mark.django_db(transaction=True)  # the consumer reads the session and the user on its own thread
@pytest.mark.parametrize("route", sorted(WEBSOCKETS))
def test_websocket_access(route, clients, make_user):
    incident = services.create_incident(title="Payment errors", severity=Severity.HIGH)
    path = "/" + route.replace("<int:incident_id>", str(incident.pk))
    outcomes = {role: _ws_connect(path, None if role == "anonymous" else clients[role]) for role in ROLES}
    assert outcomes == {role: _expected_allowed(WEBSOCKETS[route], role) for role in ROLES}
    roleless = APIClient()
    roleless.force_login(make_user(None))
    assert _ws_connect(path, roleless) is False
