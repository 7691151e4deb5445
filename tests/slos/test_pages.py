"""The SLO pages and the incident page's SLO panel (server-rendered, live on slo.updated)."""
from datetime import timedelta

import pytest
from django.utils import timezone

from incidents import services as incidents
from incidents.models import Service, Severity
from slos.models import SLO, IncidentBudgetImpact, SLIKind, SLOSnapshot, SLOStatus

pytestmark = pytest.mark.django_db


@pytest.fixture
def slo(db):
    svc = Service.objects.create(slug="checkout", name="Checkout")
    slo = SLO.objects.create(service=svc, name="Availability", slug="checkout-availability",
                             sli_kind=SLIKind.AVAILABILITY, selector='job="shop",service="checkout"', objective=99.9,
                             window_days=30, status=SLOStatus.WARNING, sli=0.99925, budget_remaining=0.25,
                             good_events=99925, total_events=100000, forecast_seconds=3 * 86400 + 4 * 3600,
                             burn_rates={"5m": 2.0, "1h": 1.5}, computed_at=timezone.now())
    now = timezone.now()
    for i, remaining in enumerate((0.5, 0.4, 0.25)):
        SLOSnapshot.objects.create(slo=slo, at=now - timedelta(minutes=10 * (3 - i)), status="healthy",
                                   budget_remaining=remaining, burn_rates={})
    return slo


def test_list_shows_status_budget_and_forecast(client, viewer, slo):
    client.force_login(viewer)
    page = client.get("/slos/").content.decode()
    assert 'id="region-slo-list"' in page and 'hx-trigger="rs-slo-updated' in page
    assert 'data-status="warning"' in page and "25.0 %" in page
    assert "at the current burn the budget is gone in 3 d 4 h" in page
    assert '<a href="/slos/"' in page  # nav link


def test_detail_has_burndown_burn_table_and_incidents(client, viewer, slo):
    client.force_login(viewer)
    incident = incidents.create_incident(title="checkout errors", severity=Severity.HIGH, primary_service=slo.service)
    IncidentBudgetImpact.objects.create(incident=incident, slo=slo, start=incident.started_at, end=timezone.now(),
                                        bad_events=10, total_events=1000, consumed=0.0123, consumed_minutes=0.53)
    page = client.get(f"/slos/{slo.pk}/").content.decode()
    assert "data-chart=" in page and "budget remaining" in page
    assert 'data-row="page_fast"' in page and "14.400×" in page
    assert "52 s" in page  # page_fast at 100 % errors: the Workbook's detection time
    assert incident.key in page and "1.23 %" in page
    for region in ("summary", "burn", "burndown", "incidents"):
        assert client.get(f"/slos/{slo.pk}/regions/{region}/").status_code == 200


def test_incident_page_slo_panel_shows_the_budget_consumed(client, viewer, slo):
    client.force_login(viewer)
    incident = incidents.create_incident(title="checkout errors", severity=Severity.HIGH, primary_service=slo.service)
    region = client.get(f"/incidents/{incident.pk}/regions/slo-impact/").content.decode()
    assert 'id="region-slo-impact"' in region and "Computed at the next SLO cycle" in region
    IncidentBudgetImpact.objects.create(incident=incident, slo=slo, start=incident.started_at, end=timezone.now(),
                                        bad_events=10, total_events=1000, consumed=0.0123, consumed_minutes=0.53,
                                        final=True)
    region = client.get(f"/incidents/{incident.pk}/regions/slo-impact/").content.decode()
    assert "1.23 %" in region and "from start to resolution" in region
    assert 'hx-trigger="rs-slo-updated from:body' in region
    assert "1.23 %" in client.get(f"/incidents/{incident.pk}/").content.decode()


def test_incident_without_slo_keeps_the_empty_state(client, viewer, db):
    client.force_login(viewer)
    svc = Service.objects.create(slug="catalog", name="Catalog")
    incident = incidents.create_incident(title="x", severity=Severity.LOW, primary_service=svc)
    region = client.get(f"/incidents/{incident.pk}/regions/slo-impact/").content.decode()
    assert "No SLO defined for catalog" in region


def test_form_is_for_admins(client, viewer, admin_user, slo):
    client.force_login(viewer)
    assert client.get("/slos/new/").status_code == 403
    client.force_login(admin_user)
    assert client.get(f"/slos/{slo.pk}/edit/").status_code == 200
