"""The detection status page, its fire drill, and the post-incident review page.

Rules and alerts reach the pages the way production puts them there: observations applied by
detection.services (the real alert state machine and incident routing), a rule evaluated against
a source that is down, external alerts ingested through the intake service.
"""
from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.urls import reverse
from django.utils import timezone
from django.utils.html import escape

from detection import services as detection
from detection.evaluation import Observation
from detection.intake import ExternalAlert
from detection.models import Alert, AlertSource, AlertSourceKind, AlertState, DetectionRule, RuleHealth, RuleKind
from incidents import services as incidents
from incidents.models import Incident, Severity, Status
from incidents.templatetags.control_room import duration
from reliability_studio.access import Role

from ..factories import ServiceFactory
from ..servers import Daphne, server_env
from .browser import new_page, off_loop, screenshot_path

pytestmark = pytest.mark.django_db
HX = {"HTTP_HX_REQUEST": "true"}
UNREACHABLE = "http://127.0.0.1:9"  # the discard port: nothing listens, connections are refused
# The 2 s bound of the issue is for the incident list (tests/control_room/test_browser.py); this
# page refreshes three regions per event, and on a loaded 2-core CI machine that took longer.
LIVE_WITHIN_MS = 5000


@pytest.fixture
def shop():
    s = {slug: ServiceFactory(slug=slug) for slug in ("frontend", "checkout", "payment", "database")}
    s["frontend"].depends_on.add(s["checkout"])
    s["checkout"].depends_on.add(s["payment"])
    s["payment"].depends_on.add(s["database"])
    return s


def make_rule(name="Payment error ratio", **fields) -> DetectionRule:
    # A rule is configuration (admins create it in the admin or the API); what happens to it after
    # that goes through detection.services.
    defaults = {"kind": RuleKind.THRESHOLD, "query": "sum(rate(errors[1m]))", "threshold": 0.05,
                "severity": Severity.HIGH, "for_seconds": 0, "recovery_hold_seconds": 0}
    return DetectionRule.objects.create(name=name, **{**defaults, **fields})


def observe(rule, *series, at=None):
    """series: (service, active, value) observed now (or at `at`)."""
    observations = [Observation({"service": svc}, value, active) for svc, active, value in series]
    return detection.apply_observations(rule=rule, observations=observations, now=at or timezone.now())


def as_user(client, user):
    client.force_login(user)
    return client


# --- the status page -------------------------------------------------------------------------

def test_rules_show_kind_service_severity_health_and_series_counts(client, viewer, shop):
    ratio = make_rule(service=shop["payment"])
    slow = make_rule("Checkout latency p99", for_seconds=120, severity=Severity.MEDIUM)
    idle = make_rule("Catalog restarts", kind=RuleKind.KUBERNETES, kubernetes_condition="restarts", query="",
                     enabled=False)
    observe(ratio, ("payment", True, 0.31), ("database", True, 0.2))  # for 0 s: both fire at once
    observe(slow, ("checkout", True, 1.9), ("frontend", False, 0.2))  # for 120 s: pending

    html = as_user(client, viewer).get(reverse("detection:status")).content.decode()
    ratio_row = _row(html, f"rule-{ratio.pk}")
    assert "Payment error ratio" in ratio_row and "Threshold (PromQL)" in ratio_row
    assert ">payment</span>" in ratio_row and 'class="badge sev-high"' in ratio_row
    assert 'count firing">2<' in ratio_row and "never evaluated" in ratio_row
    slow_row = _row(html, f"rule-{slow.pk}")
    assert 'count pending">1<' in slow_row and "by label" in slow_row
    idle_row = _row(html, f"rule-{idle.pk}")
    assert 'class="disabled"' in idle_row and "<td>no</td>" in idle_row and "Kubernetes state" in idle_row
    assert 'data-live-url="/ws/incidents/"' in html


def test_a_rule_whose_source_is_down_shows_unknown_with_the_error(client, viewer, shop, settings):
    settings.PROMETHEUS_URL = UNREACHABLE
    settings.TELEMETRY_RETRIES = 0
    settings.TELEMETRY_TIMEOUT_SECONDS = 1
    rule = make_rule()
    detection.evaluate_rule(rule=rule)
    rule.refresh_from_db()
    assert rule.health == RuleHealth.UNKNOWN and rule.last_error

    html = as_user(client, viewer).get(reverse("detection:status")).content.decode()
    row = _row(html, f"rule-{rule.pk}")
    assert 'data-health="unknown"' in row and ">unknown</span>" in row
    assert escape(rule.last_error) in row  # the source's own message, not a generic "error"
    assert "ago" in row  # it was evaluated: the age of the last evaluation is shown


def test_pending_and_firing_alerts_with_labels_value_since_and_incident(client, viewer, shop):
    fast, slow = make_rule(), make_rule("Checkout latency p99", for_seconds=300)
    observe(fast, ("payment", True, 0.3125))
    observe(slow, ("checkout", True, 2.5))
    firing = Alert.objects.get(rule=fast)
    pending = Alert.objects.get(rule=slow)
    assert firing.state == AlertState.FIRING and firing.incident is not None

    html = as_user(client, viewer).get(reverse("detection:status")).content.decode()
    row = _row(html, f"alert-{firing.pk}")
    assert 'data-state="firing"' in row and "<code>service=payment</code>" in row and "0.3125" in row
    assert f'href="/incidents/{firing.incident.pk}/"' in row and firing.incident.key in row
    assert "data-since=" in row
    row = _row(html, f"alert-{pending.pk}")
    assert 'data-state="pending"' in row and "not yet" in row
    assert html.index(f'id="alert-{firing.pk}"') < html.index(f'id="alert-{pending.pk}"')  # firing first

    # Once the condition clears (no hold) the alert resolves and leaves the list.
    observe(fast, ("payment", False, 0.0))
    html = client.get(reverse("detection:region", args=["alerts"]), **HX).content.decode()
    assert f'id="alert-{firing.pk}"' not in html and f'id="alert-{pending.pk}"' in html


def test_external_sources_show_their_last_delivery_and_firing_alerts(client, viewer, shop):
    source = AlertSource(name="prod-alertmanager", kind=AlertSourceKind.ALERTMANAGER)
    source.set_new_token()
    source.save()
    quiet = AlertSource(name="grafana-cloud", kind=AlertSourceKind.GRAFANA)
    quiet.set_new_token()
    quiet.save()
    detection.ingest_external_alerts(source=source, alerts=[ExternalAlert(
        fingerprint="abc123", name="KubePodCrashLooping", firing=True, labels={"service": "checkout"},
        annotations={}, starts_at=None, ends_at=None, severity=Severity.HIGH, service_slug="checkout")])

    html = as_user(client, viewer).get(reverse("detection:status")).content.decode()
    row = _row(html, f"source-{source.pk}")
    assert "prod-alertmanager" in row and "ago" in row and '<td class="num">1</td>' in row
    assert "nothing yet" in _row(html, f"source-{quiet.pk}")
    recent = html[html.index('id="recent-external-alerts"'):]
    assert "KubePodCrashLooping" in recent and "from prod-alertmanager" in recent
    # External alerts that fire are listed with the rules' alerts, named by their source.
    alert = Alert.objects.get(source=source)
    assert "from prod-alertmanager" in _row(html, f"alert-{alert.pk}")


def test_empty_page_says_so(client, viewer):
    html = as_user(client, viewer).get(reverse("detection:status")).content.decode()
    assert "No detection rules yet." in html and "No alert is pending or firing." in html
    assert "No external source is configured." in html


def test_every_region_can_be_fetched_alone(client, viewer, shop):
    observe(make_rule(), ("payment", True, 0.5))
    as_user(client, viewer)
    for region in ("rules", "alerts", "sources"):
        response = client.get(reverse("detection:region", args=[region]), **HX)
        html = response.content.decode()
        assert response.status_code == 200 and "<html" not in html and f'id="region-{region}"' in html
        assert "rs-detection-updated from:body" in html and "rs-reconnected from:body" in html
    assert client.get(reverse("detection:region", args=["nope"])).status_code == 404


def test_navigation_links_to_the_detection_page(client, viewer):
    html = as_user(client, viewer).get(reverse("incidents:list")).content.decode()
    assert f'href="{reverse("detection:status")}"' in html


# --- permissions -------------------------------------------------------------------------------

def test_anonymous_is_sent_to_login(client, shop):
    incident = incidents.create_incident(title="x", severity="low")
    for url in (reverse("detection:status"), reverse("detection:region", args=["rules"]),
                reverse("incidents:review", args=[incident.pk])):
        response = client.get(url)
        assert response.status_code == 302 and "/accounts/login/" in response["Location"], url
    response = client.post(reverse("detection:fire-drill"), {"service": "payment", "kind": "crash"})
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]


def test_a_user_without_a_role_is_refused(client, make_user, shop):
    incident = incidents.create_incident(title="x", severity="low")
    as_user(client, make_user(None))
    assert client.get(reverse("detection:status")).status_code == 403
    assert client.get(reverse("incidents:review", args=[incident.pk])).status_code == 403


def test_viewer_sees_no_fire_drill_and_a_forged_post_is_refused(client, viewer, shop, settings):
    settings.DEMO_CONTROL_URL = UNREACHABLE
    html = as_user(client, viewer).get(reverse("detection:status")).content.decode()
    assert 'id="fire-drill"' not in html and "Recover all" not in html
    assert client.post(reverse("detection:fire-drill"), {"service": "payment", "kind": "crash"}, **HX).status_code == 403
    assert client.post(reverse("detection:recover-all"), **HX).status_code == 403


def test_responder_cannot_run_a_fire_drill_either(client, responder, shop):
    as_user(client, responder)
    assert client.post(reverse("detection:fire-drill"), {"service": "payment", "kind": "crash"}).status_code == 403


def test_fire_drill_needs_a_csrf_token(admin_user, shop, settings):
    from django.test import Client

    settings.DEMO_CONTROL_URL = UNREACHABLE
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(admin_user)
    assert strict.post(reverse("detection:fire-drill"), {"service": "payment", "kind": "crash"}).status_code == 403


# --- fire drill --------------------------------------------------------------------------------

def test_admin_with_the_workload_unreachable_gets_honest_messages_inline(client, admin_user, shop, settings):
    settings.DEMO_CONTROL_URL = UNREACHABLE
    as_user(client, admin_user)
    html = client.get(reverse("detection:status")).content.decode()
    assert 'id="fire-drill"' in html and '<option value="payment">' in html
    assert "Fault state unknown" in html and "is unreachable" in html

    response = client.post(reverse("detection:fire-drill"), {"service": "payment", "kind": "error", "value": "0.5"}, **HX)
    html = response.content.decode()
    assert response.status_code == 422 and "<html" not in html and 'id="fire-drill"' in html
    assert 'id="drill-error"' in html and f"control API at {UNREACHABLE} is unreachable" in html
    assert 'value="0.5"' in html  # what the admin typed survives

    # Without htmx the whole page comes back with the same message in place.
    response = client.post(reverse("detection:fire-drill"), {"service": "payment", "kind": "crash"})
    assert response.status_code == 422 and "<html" in response.content.decode()
    assert "is unreachable" in response.content.decode() and 'id="region-rules"' in response.content.decode()

    response = client.post(reverse("detection:recover-all"), **HX)
    assert response.status_code == 422 and "is unreachable" in response.content.decode()


@pytest.mark.parametrize("data, message", [
    ({"service": "payment", "kind": "error", "value": "1.5"}, "error rate must be in (0, 1]"),
    ({"service": "payment", "kind": "error", "value": ""}, "an error fault needs a rate"),
    ({"service": "payment", "kind": "latency", "value": "fast"}, "bad duration"),
    ({"service": "nosuch", "kind": "crash"}, "Select a valid choice"),
    ({"service": "payment", "kind": "meltdown"}, "Select a valid choice"),
])
def test_fire_drill_input_errors_are_shown_in_the_form(client, admin_user, shop, settings, data, message):
    settings.DEMO_CONTROL_URL = UNREACHABLE
    response = as_user(client, admin_user).post(reverse("detection:fire-drill"), data, **HX)
    assert response.status_code == 422
    assert escape(message) in response.content.decode()


@pytest.fixture
def workload(tmp_path, settings):
    """The real demo workload (its control API on a free port)."""
    from ..support.shop import start_shop

    running = start_shop(tmp_path, rps=5)
    settings.DEMO_CONTROL_URL = running.control_url
    yield running
    running.stop()


@pytest.mark.slow
def test_admin_injects_a_fault_and_recovers_everything_through_the_page(client, admin_user, shop, workload):
    as_user(client, admin_user)
    html = client.get(reverse("detection:status")).content.decode()
    assert 'id="fault-state"' in html and 'data-service="payment"' in html

    response = client.post(reverse("detection:fire-drill"), {"service": "payment", "kind": "error", "value": "0.5"}, **HX)
    html = response.content.decode()
    assert response.status_code == 200 and "Injected error payment 0.5" in html
    assert "error rate 0.5" in _row(html, 'data-service="payment"', tag="li", attr="")
    assert workload.control("GET", "/faults/payment").json()["faults"][0]["error_rate"] == 0.5

    response = client.post(reverse("detection:fire-drill"), {"service": "checkout", "kind": "latency", "value": "1.5s"})
    assert response.status_code == 302 and response["Location"] == reverse("detection:status")
    assert workload.control("GET", "/faults/checkout").json()["faults"][0]["add_ms"] == 1500

    response = client.post(reverse("detection:recover-all"), **HX)
    assert response.status_code == 200 and "Every fault was cleared." in response.content.decode()
    assert "error rate" not in response.content.decode()
    assert all(not info["faults"] for info in workload.control("GET", "/faults").json()["services"].values())


# --- post-incident review ------------------------------------------------------------------------

def test_review_shows_header_durations_alerts_blast_radius_timeline_tasks_and_root_cause(client, viewer, responder, shop):
    rule = make_rule(for_seconds=60)
    pending_at = timezone.now() - timedelta(seconds=90)
    observe(rule, ("payment", True, 0.3), at=pending_at)
    observe(rule, ("payment", True, 0.4))  # the for-duration has passed: firing, the incident opens
    alert = Alert.objects.get(rule=rule)
    incident = alert.incident
    incidents.acknowledge_incident(incident=incident, user=responder)
    incidents.create_task(incident=incident, title="Add a retry budget to the payment adapter", user=responder)
    incidents.update_incident(incident=incident, user=responder, root_cause="A bad deploy of the adapter.",
                              impact="1 in 8 checkouts failed for 20 minutes.")
    observe(rule, ("payment", False, 0.0))  # the alert resolves (no recovery hold)
    incidents.transition_incident(incident=incident, to=Status.RESOLVED, user=responder)
    incident.refresh_from_db()
    alert.refresh_from_db()

    response = as_user(client, viewer).get(reverse("incidents:review", args=[incident.pk]))
    html = response.content.decode()
    assert response.status_code == 200
    assert incident.key in html and incident.title in html and 'data-status="resolved"' in html

    start = html.index('id="durations"')
    durations = html[start:html.index("</dl>", start)]
    for label, value in (("Time to detect", incident.time_to_detect), ("Time to acknowledge", incident.time_to_acknowledge),
                         ("Time to mitigate", incident.time_to_mitigate), ("Time to resolve", incident.time_to_resolve)):
        assert value is not None and label in durations and duration(value) in durations, label
    assert 90 <= incident.time_to_detect.total_seconds() < 100  # started when the condition was first seen

    row = _row(html, f"review-alert-{alert.pk}")
    assert "rule: Payment error ratio" in row and "<td>payment</td>" in row
    fired = incident.timeline.get(message__startswith="FIRING").occurred_at
    assert local(fired) in row and local(alert.resolved_at) in row

    assert 'data-service="payment" data-state="affected"' in html  # the blast-radius SVG
    assert 'data-service="frontend" data-state="dependent"' in html
    assert "A bad deploy of the adapter." in html and "1 in 8 checkouts failed" in html
    assert "Add a retry budget to the payment adapter" in html
    timeline = html[html.index('id="review-section-timeline"'):]
    assert timeline.index("FIRING: Payment error ratio") < timeline.index("investigating → resolved")  # oldest first
    assert "@media print" in _stylesheet()


def test_review_of_a_manual_incident_says_no_alert_belonged_to_it(client, viewer, shop):
    incident = incidents.create_incident(title="Checkout slow", severity="medium", primary_service=shop["checkout"])
    html = as_user(client, viewer).get(reverse("incidents:review", args=[incident.pk])).content.decode()
    assert "No alert belonged to this incident" in html and "the review is incomplete" in html
    durations = html[html.index('id="durations"'):]
    assert durations[:durations.index("</dl>")].count("not reached") == 3  # not acknowledged, mitigated, resolved


def test_incident_page_header_links_to_the_review(client, viewer, shop):
    incident = incidents.create_incident(title="Checkout slow", severity="medium")
    html = as_user(client, viewer).get(reverse("incidents:detail", args=[incident.pk])).content.decode()
    assert f'href="{reverse("incidents:review", args=[incident.pk])}"' in html


# --- live, in a real browser -------------------------------------------------------------------

@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_detection_page_shows_a_new_firing_alert_without_reload(browser, make_user, shop, tmp_path, settings):
    make_user(Role.VIEWER, username="vera")
    rule = make_rule(for_seconds=30)
    settings.PROMETHEUS_URL, settings.TELEMETRY_RETRIES = UNREACHABLE, 0
    off_loop(detection.evaluate_rule, rule=make_rule("Checkout latency p99", service=shop["checkout"]))  # unknown
    server = Daphne(server_env(connection.settings_dict["NAME"]))
    try:
        page = new_page(browser, server.url, "vera", next_path="/detection/")
        page.evaluate("window.__sameDocument = true")
        off_loop(observe, rule, ("payment", True, 0.42), at=timezone.now() - timedelta(seconds=31))  # pending
        alert = Alert.objects.get(rule=rule)
        page.locator(f'#alert-{alert.pk}[data-state="pending"]').wait_for(timeout=LIVE_WITHIN_MS)

        off_loop(observe, rule, ("payment", True, 0.57))  # the 30 s for-duration has passed: firing
        row = page.locator(f'#alert-{alert.pk}[data-state="firing"]')
        row.wait_for(timeout=LIVE_WITHIN_MS)
        incident = Incident.objects.get()
        assert incident.key in row.inner_text() and "0.57" in row.inner_text()
        page.locator(f"#rule-{rule.pk} .count.firing").wait_for(timeout=LIVE_WITHIN_MS)

        # No region polls: what the page shows came over the WebSocket.
        assert page.locator("[hx-trigger*='every']").count() == 0
        assert page.evaluate("window.__sameDocument") is True  # no reload
        page.screenshot(path=screenshot_path("detection.png", tmp_path), full_page=True)
    finally:
        server.stop()


# --- helpers -----------------------------------------------------------------------------------

def _row(html: str, marker: str, tag: str = "tr", attr: str = "id") -> str:
    """The element (a table row by default) whose opening tag holds id="<marker>" (or `marker`)."""
    needle = f'{attr}="{marker}"' if attr else marker
    start = html.index(needle)
    start = html.rindex(f"<{tag}", 0, start)
    return html[start:html.index(f"</{tag}>", start)]


def local(moment) -> str:
    return timezone.localtime(moment).strftime("%Y-%m-%d %H:%M:%S")


def _stylesheet() -> str:
    from django.contrib.staticfiles import finders

    with open(finders.find("css/app.css")) as handle:
        return handle.read()
