"""One click from the incident list to the named cause, in a real browser (Debian's Chromium through
Playwright) against a real daphne: no query typed, the top hypothesis names the service and shows
its evidence. Then a responder confirms it, resolves, and reads the generated review.

`UPDATE_SCREENSHOTS=1` writes docs/screenshots/incident-page.png and review.png.
"""
from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.management import call_command
from django.db import connection
from django.utils import timezone

from incidents import services
from incidents.models import EventKind, Service
from investigation.models import InvestigationRun
from reliability_studio.access import Role

from ..control_room.browser import new_page, off_loop, screenshot_path
from ..control_room.conftest import browser  # noqa: F401 — the module's Chromium (a fixture)
from ..servers import Daphne, server_env
from .test_pages import investigated

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]
LIVE_WITHIN_MS = 3000


@pytest.fixture
def daphne():
    server = Daphne(server_env(connection.settings_dict["NAME"]))
    yield server
    server.stop()


@pytest.fixture
def rita(make_user):
    return make_user(Role.RESPONDER, username="rita")


def _seed(monkeypatch):
    # The investigation that opening an incident queues is not run here (no telemetry in this
    # test); the stored run below stands for a finished one.
    monkeypatch.setattr("investigation.tasks.run_investigation.apply_async", lambda *a, **k: None)
    call_command("load_catalog", "demo/catalog.yaml", verbosity=0)
    svc = {s.slug: s for s in Service.objects.all()}
    now = timezone.now()
    services.create_incident(title="Catalog search latency p99 above 800 ms", severity="medium",
                             primary_service=svc["catalog"], started_at=now - timedelta(minutes=30))
    incident = services.create_incident(
        title="Checkout error rate 9% (5xx)", severity="critical", primary_service=svc["checkout"],
        affected_services=[svc["checkout"], svc["frontend"]], started_at=now - timedelta(minutes=12),
        actor="detection", source="rule")
    services.append_timeline_event(incident=incident, kind=EventKind.ALERT, actor="detection",
                                   message="checkout_error_rate > 0.05 for 1m (value 0.09)")
    InvestigationRun.objects.filter(incident=incident).delete()
    rows = investigated(incident)
    services.create_task(incident=incident, title="Roll back payment to v1.4.1")
    return incident, rows


def test_one_click_from_the_list_to_the_named_cause(browser, daphne, rita, monkeypatch, tmp_path):
    incident, rows = off_loop(_seed, monkeypatch)
    page = new_page(browser, daphne.url, "rita")

    page.get_by_role("link", name=incident.key).click()  # the one click
    page.wait_for_url(f"{daphne.url}/incidents/{incident.pk}/")
    assert page.locator("#region-investigation").count() == 1, \
        "the investigation's panels are not registered: InvestigationConfig.ready() must call investigation.panels.register()"
    top = page.locator('#hypotheses-ranked > li[data-rank="1"]')
    assert top.get_attribute("data-service") == "payment"
    assert "payment is failing and checkout fails through it" in top.inner_text() and "72%" in top.inner_text()
    assert "payment" in page.locator("#likely-cause").inner_text()
    # Its evidence is on the screen without typing anything: the findings, and the chart of the
    # metric that moved (the metrics tab is open because the top hypothesis' strongest evidence is one).
    evidence = top.locator(".hypothesis-evidence li")
    assert evidence.count() == 3 and "payment error ratio 0.02 → 0.61" in evidence.first.inner_text()
    metrics = page.locator(f"#evidence-{rows['metrics'].pk}")
    metrics.locator(".uplot").wait_for(timeout=LIVE_WITHIN_MS)
    assert metrics.locator("code.query").inner_text().startswith('sum(rate(http_requests_total{service="payment"')
    assert page.locator("#region-investigation").get_attribute("data-run-status") == "partial"
    page.screenshot(path=screenshot_path("incident-page.png", tmp_path), full_page=True)

    # Following the log evidence opens its tab; a source that failed says so in its own.
    top.locator(f'a[href="#evidence-{rows["logs"].pk}"]').click()
    page.locator(f"#evidence-{rows['logs'].pk}").wait_for(state="visible")
    assert "provider adapter returned" in page.locator("#ev-panel-logs").inner_text()
    page.locator("#ev-tab-traces").click()
    traces = page.locator("#ev-panel-traces")
    assert "Tempo unavailable: connection refused" in traces.inner_text()
    assert traces.locator("li.span.origin").inner_text().startswith("payment")

    # The responder confirms it: the summary names it as the confirmed cause, live.
    top.get_by_role("button", name="Confirm: payment is failing and checkout fails through it").click()
    page.locator("#likely-cause .badge.confirmed").wait_for(timeout=LIVE_WITHIN_MS)
    page.locator("#region-timeline li", has_text="Confirmed hypothesis").wait_for(timeout=LIVE_WITHIN_MS)

    page.get_by_role("button", name="Resolve").click()
    page.locator('#incident-status[data-status="resolved"]').wait_for(timeout=LIVE_WITHIN_MS)
    assert "resolved without acknowledgement" not in page.locator("#mtta").inner_text()  # resolving acknowledged it

    page.get_by_role("link", name="Review").click()
    page.wait_for_url(f"{daphne.url}/incidents/{incident.pk}/review/")
    cause = page.locator("#review-section-root_cause").inner_text()
    assert "payment is failing and checkout fails through it" in cause and "confirmed by rita" in cause
    assert "Roll back payment to v1.4.1" in page.locator("#review-section-action_items").inner_text()
    page.screenshot(path=screenshot_path("review.png", tmp_path), full_page=True)
