"""The control room in a real browser (Debian's Chromium through Playwright) against a real daphne.

Each test starts daphne on the test database, signs in through the login form and watches the page
change without reloading it. `UPDATE_SCREENSHOTS=1` writes the images under docs/screenshots/.
"""
from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.management import call_command
from django.db import connection
from django.utils import timezone

from incidents import services
from incidents.models import EventKind, Incident, Service, Status
from reliability_studio.access import Role

from ..servers import Daphne, login, server_env
from .browser import VIEWPORT, new_page, off_loop, screenshot_path, static_site, wait_live

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]
LIVE_WITHIN_MS = 2000


@pytest.fixture
def daphne():
    server = Daphne(server_env(connection.settings_dict["NAME"]))
    yield server
    server.stop()


@pytest.fixture
def people(make_user):
    return {
        "rita": make_user(Role.RESPONDER, username="rita"),
        "vera": make_user(Role.VIEWER, username="vera"),
    }


def api_session(server, username):
    session = login(server.url, username, "correct-horse-battery-staple")
    session.headers.update({"X-CSRFToken": session.cookies["csrftoken"], "Referer": server.url + "/"})
    return session


def seed_control_room(people) -> Incident:
    """The demo shop's catalog and a few incidents, the way detection and responders leave them."""
    return off_loop(_seed, people)


def _seed(people) -> Incident:
    call_command("load_catalog", "demo/catalog.yaml", verbosity=0)
    svc = {s.slug: s for s in Service.objects.all()}
    now = timezone.now()
    services.create_incident(
        title="Catalog search latency p99 above 800 ms", severity="medium", primary_service=svc["catalog"],
        started_at=now - timedelta(minutes=47),
    )
    old = services.create_incident(title="Database connection pool saturated", severity="high",
                                   primary_service=svc["database"], started_at=now - timedelta(hours=3))
    services.transition_incident(incident=old, to=Status.RESOLVED, user=people["rita"], note="pool resized")
    main = services.create_incident(
        title="Payment error rate 12% (5xx)", severity="critical", primary_service=svc["payment"],
        affected_services=[svc["payment"]], started_at=now - timedelta(minutes=9),
        summary="Card authorisations fail with HTTP 502 from the payment provider adapter since 10:41.",
        impact="About 1 in 8 checkouts fails; frontend and checkout see the errors through payment.",
        actor="detection", source="rule",
    )
    services.append_timeline_event(incident=main, kind=EventKind.ALERT, actor="detection",
                                   message="payment_error_rate > 0.05 for 2m (value 0.12)")
    services.append_timeline_event(incident=main, kind=EventKind.DEPLOY, actor="ci",
                                   message="payment v1.4.2 rolled out 11 minutes ago")
    services.add_comment(incident=main, user=people["rita"], message="Looking at the provider adapter logs.")
    services.create_task(incident=main, title="Check the provider status page")
    done = services.create_task(incident=main, title="Page the payments on-call")
    services.update_task(task=done, done=True)
    return main


def test_incident_created_through_the_api_appears_live_and_leaves_when_resolved(browser, daphne, people, tmp_path):
    seed_control_room(people)
    page = new_page(browser, daphne.url, "vera")
    rita = api_session(daphne, "rita")

    created = rita.post(daphne.url + "/api/v1/incidents/",
                        json={"title": "Checkout latency spike", "severity": "high", "primary_service": "checkout"},
                        timeout=5)
    assert created.status_code == 201, created.text
    row = page.locator(f"#incident-{created.json()['id']}")
    row.wait_for(timeout=LIVE_WITHIN_MS)  # no reload: the WebSocket event fetched the table again
    assert "Checkout latency spike" in row.inner_text() and "checkout" in row.inner_text()
    page.screenshot(path=screenshot_path("incident-list.png", tmp_path))

    resolved = rita.post(daphne.url + f"/api/v1/incidents/{created.json()['id']}/resolve/", json={}, timeout=5)
    assert resolved.status_code == 200, resolved.text
    row.wait_for(state="detached", timeout=LIVE_WITHIN_MS)
    assert "Checkout latency spike" in page.locator("#recently-resolved").inner_text()


def test_filters_swap_the_table_without_reload(browser, daphne, people):
    seed_control_room(people)
    page = new_page(browser, daphne.url, "vera")
    page.evaluate("window.__sameDocument = true")
    page.select_option("select[name=service]", "catalog")
    page.locator("#incidents tbody tr").filter(has_text="Payment error rate").wait_for(state="detached")
    assert "Catalog search latency" in page.locator("#incidents").inner_text()
    assert page.evaluate("window.__sameDocument") is True and "service=catalog" in page.url


def test_incident_page_renders_every_panel_and_acknowledge_reaches_a_second_browser(browser, daphne, people, tmp_path):
    incident = seed_control_room(people)
    path = f"/incidents/{incident.pk}/"
    rita = new_page(browser, daphne.url, "rita", next_path=path)
    vera = new_page(browser, daphne.url, "vera", next_path=path)

    for region in ("header", "summary", "blast-radius", "slo-impact", "evidence", "hypotheses", "actions", "timeline", "tasks"):
        assert rita.locator(f"#region-{region}").is_visible(), region
    assert rita.locator('.service-graph [data-service="payment"][data-state="affected"]').is_visible()
    assert rita.locator('.service-graph [data-service="frontend"][data-state="dependent"]').is_visible()
    assert "No SLO defined for payment yet" in rita.locator("#region-slo-impact").inner_text()
    # docs/screenshots/incident-page.png comes from tests/investigation/test_browser_cause.py (real panels).
    rita.screenshot(path=tmp_path / "incident-page.png", full_page=True)
    entries_before = vera.locator("#region-timeline li").count()

    rita.get_by_role("button", name="Acknowledge").click()
    for page in (rita, vera):
        page.locator('#incident-status[data-status="investigating"]').wait_for(timeout=LIVE_WITHIN_MS)
        page.locator("#region-timeline li", has_text="open → investigating").wait_for(timeout=LIVE_WITHIN_MS)
    assert vera.locator("#region-timeline li").count() == entries_before + 1
    assert vera.locator("#commander").inner_text() == "rita"
    assert vera.locator("button[data-action]").count() == 0  # vera is a viewer

    # A comment and a task from one browser arrive in the other.
    rita.fill("#comment-message", "Rolling back payment to v1.4.1")
    rita.get_by_role("button", name="Comment").click()
    vera.locator("#region-timeline li", has_text="Rolling back payment to v1.4.1").wait_for(timeout=LIVE_WITHIN_MS)
    assert rita.input_value("#comment-message") == ""
    rita.fill("#task-title", "Write the post-incident review")
    rita.keyboard.press("Enter")
    vera.locator("#region-tasks li", has_text="Write the post-incident review").wait_for(timeout=LIVE_WITHIN_MS)


def test_an_invalid_action_shows_its_message_inline(browser, daphne, people):
    incident = seed_control_room(people)
    path = f"/incidents/{incident.pk}/"
    page = new_page(browser, daphne.url, "rita", next_path=path)
    off_loop(services.transition_incident, incident=incident, to=Status.RESOLVED, user=people["rita"])  # behind its back
    page.locator('#incident-status[data-status="resolved"]').wait_for(timeout=LIVE_WITHIN_MS)
    page.evaluate("""() => htmx.ajax('POST', location.pathname + 'actions/mitigate/', {target: '#region-header', swap: 'outerHTML'})""")
    assert "cannot go from resolved to mitigated" in page.locator("#action-error").inner_text()


def test_page_catches_up_after_the_connection_drops(browser, people, make_user):
    incident = seed_control_room(people)
    env = server_env(connection.settings_dict["NAME"])
    server = Daphne(env)
    try:
        page = new_page(browser, server.url, "vera", next_path=f"/incidents/{incident.pk}/")
        server.stop()
        page.locator("body[data-live-state=down]").wait_for(timeout=5000)
        off_loop(services.add_comment, incident=incident, user=people["rita"], message="Said while the server was down")
        server = Daphne(env, port=server.port)
        wait_live(page, timeout=15000)
        page.locator("#region-timeline li", has_text="Said while the server was down").wait_for(timeout=LIVE_WITHIN_MS)
    finally:
        server.stop()


def test_viewer_sees_no_action_buttons_and_a_forged_post_is_refused(browser, daphne, people):
    incident = seed_control_room(people)
    page = new_page(browser, daphne.url, "vera", next_path=f"/incidents/{incident.pk}/")
    assert page.locator("button[data-action]").count() == 0
    assert page.locator("#comment-message").count() == 0 and page.locator("#task-title").count() == 0
    status = page.evaluate("""async (url) => {
        const token = JSON.parse(document.body.getAttribute('hx-headers'))['X-CSRFToken'];
        const response = await fetch(url, {method: 'POST', headers: {'X-CSRFToken': token, 'HX-Request': 'true'}});
        return response.status;
    }""", f"/incidents/{incident.pk}/actions/acknowledge/")
    assert status == 403
    incident.refresh_from_db()
    assert incident.status == Status.OPEN and incident.acknowledged_at is None


GRAFANA_PAGE = """<!doctype html><html><head><title>Grafana stand-in</title>
<style>html,body{{margin:0;height:100%}} iframe{{border:0;width:100%;height:100%}}</style></head>
<body><iframe id="control-room" title="Reliability Studio" src="{src}"></iframe></body></html>"""


def test_control_room_works_inside_an_allowed_grafana_frame_and_is_refused_elsewhere(browser, people, tmp_path):
    incident = seed_control_room(people)
    allowed_dir, other_dir = tmp_path / "grafana", tmp_path / "elsewhere"
    allowed_dir.mkdir()
    other_dir.mkdir()
    with static_site(allowed_dir) as grafana, static_site(other_dir) as elsewhere:
        server = Daphne(server_env(connection.settings_dict["NAME"], GRAFANA_FRAME_ORIGINS=grafana))
        try:
            for directory in (allowed_dir, other_dir):
                (directory / "index.html").write_text(GRAFANA_PAGE.format(src=server.url + "/accounts/login/"))

            context = browser.new_context(viewport=VIEWPORT)
            page = context.new_page()
            page.goto(grafana + "/index.html")
            frame = page.frame_locator("#control-room")
            frame.locator("#id_username").fill("rita")
            frame.locator("#id_password").fill("correct-horse-battery-staple")
            frame.locator("button[type=submit]").click()  # session and CSRF cookies work inside the frame
            frame.locator("#incidents").wait_for()
            wait_live(frame)
            frame.get_by_role("link", name=incident.key).click()
            frame.get_by_role("button", name="Acknowledge").click()
            frame.locator('#incident-status[data-status="investigating"]').wait_for(timeout=LIVE_WITHIN_MS)
            page.screenshot(path=screenshot_path("embedded-in-grafana.png", tmp_path))

            refused = context.new_page()
            blocked = []
            refused.on("console", lambda message: blocked.append(message.text))
            refused.goto(elsewhere + "/index.html")
            refused.wait_for_timeout(1000)
            inner = next(f for f in refused.frames if f != refused.main_frame)
            assert inner.url.startswith("chrome-error://") or inner.locator("#id_username").count() == 0
            assert any("frame-ancestors" in text for text in blocked), blocked
            context.close()
        finally:
            server.stop()


def test_services_page_lists_the_catalog_live(browser, daphne, people, tmp_path):
    seed_control_room(people)
    page = new_page(browser, daphne.url, "vera", next_path="/services/")
    assert "No SLO defined yet" in page.locator("#service-checkout").inner_text()
    assert "no open incident" in page.locator("#service-checkout").inner_text()
    rita = api_session(daphne, "rita")
    rita.post(daphne.url + "/api/v1/incidents/", json={"title": "Checkout down", "severity": "critical",
                                                      "primary_service": "checkout"}, timeout=5)
    page.locator("#service-checkout .badge", has_text="degraded").wait_for(timeout=LIVE_WITHIN_MS)
    page.screenshot(path=screenshot_path("services.png", tmp_path))


def test_keyboard_reaches_the_actions(browser, daphne, people):
    incident = seed_control_room(people)
    page = new_page(browser, daphne.url, "rita", next_path=f"/incidents/{incident.pk}/")
    for _ in range(30):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.dataset.action") == "acknowledge":
            break
    else:
        pytest.fail("Tab never reached the Acknowledge button")
    page.keyboard.press("Enter")
    page.locator('#incident-status[data-status="investigating"]').wait_for(timeout=LIVE_WITHIN_MS)
