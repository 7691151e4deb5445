"""Control room pages through Django's test client: rendering, filters, partials, writes, roles."""
import pytest
from django.urls import reverse

from incidents import services
from incidents.models import EventKind, Status

from ..factories import ServiceFactory

pytestmark = pytest.mark.django_db
HX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture
def shop():
    database = ServiceFactory(slug="database")
    payment = ServiceFactory(slug="payment")
    checkout = ServiceFactory(slug="checkout")
    frontend = ServiceFactory(slug="frontend")
    catalog = ServiceFactory(slug="catalog")
    payment.depends_on.add(database)
    checkout.depends_on.add(payment, database)
    frontend.depends_on.add(checkout, catalog)
    return {s.slug: s for s in (database, payment, checkout, frontend, catalog)}


@pytest.fixture
def incident(shop, responder):
    return services.create_incident(
        title="Payment 5xx", severity="critical", primary_service=shop["payment"], user=responder,
        summary="Card payments fail.", impact="Checkout conversions down 40%.",
    )


def client_for(client, user):
    client.force_login(user)
    return client


def test_list_shows_active_first_with_badges_and_services(client, viewer, shop, responder):
    low = services.create_incident(title="Catalog slow", severity="low", primary_service=shop["catalog"])
    crit = services.create_incident(title="Payment down", severity="critical", primary_service=shop["payment"])
    done = services.create_incident(title="Old thing", severity="high")
    services.transition_incident(incident=done, to=Status.RESOLVED, user=responder)
    page = client_for(client, viewer).get(reverse("incidents:list"))
    html = page.content.decode()
    assert page.status_code == 200
    assert html.index(crit.key) < html.index(low.key)  # worst first among the active
    assert 'class="badge sev-critical"' in html and ">payment</span>" in html
    assert f'id="incident-{done.pk}"' not in html  # resolved: not in the active table...
    assert "Recently resolved" in html and done.key in html  # ...but listed below it


def test_list_filters_return_the_table_partial(client, viewer, shop, responder):
    services.create_incident(title="Catalog slow", severity="low", primary_service=shop["catalog"])
    pay = services.create_incident(title="Payment down", severity="critical", primary_service=shop["payment"])
    page = client_for(client, viewer).get(reverse("incidents:list"), {"service": "payment", "status": "all"}, **HX)
    html = page.content.decode()
    assert "<html" not in html and 'id="incidents"' in html
    assert pay.key in html and "Catalog slow" not in html
    page = client.get(reverse("incidents:list"), {"severity": "medium"}, **HX)
    assert "No incidents match these filters." in page.content.decode()
    # A bad filter value falls back to the default list instead of failing.
    assert client.get(reverse("incidents:list"), {"status": "bogus"}).status_code == 200


def test_incident_page_renders_every_panel(client, viewer, incident):
    page = client_for(client, viewer).get(reverse("incidents:detail", args=[incident.pk]))
    html = page.content.decode()
    for region in ("header", "summary", "blast-radius", "slo-impact", "evidence", "hypotheses", "actions", "timeline", "tasks"):
        assert f'id="region-{region}"' in html, region
    assert "Card payments fail." in html and "Checkout conversions down 40%." in html
    assert "No SLO defined for payment yet" in html
    assert 'data-live-url="/ws/incidents/%d/"' % incident.pk in html


def test_blast_radius_picture_marks_affected_and_dependents(client, viewer, incident):
    html = client_for(client, viewer).get(reverse("incidents:region", args=[incident.pk, "blast-radius"])).content.decode()
    assert '<svg' in html
    assert 'data-service="payment" data-state="affected"' in html
    for dependent in ("checkout", "frontend"):
        assert f'data-service="{dependent}" data-state="dependent"' in html
    for bystander in ("database", "catalog"):
        assert f'data-service="{bystander}" data-state="other"' in html


def test_every_region_can_be_fetched_alone(client, viewer, incident):
    client_for(client, viewer)
    for region in ("header", "summary", "blast-radius", "slo-impact", "evidence", "hypotheses", "actions", "timeline", "tasks"):
        response = client.get(reverse("incidents:region", args=[incident.pk, region]))
        assert response.status_code == 200 and "<html" not in response.content.decode()
    assert client.get(reverse("incidents:region", args=[incident.pk, "nope"])).status_code == 404


def test_acknowledge_through_the_page_changes_status_and_timeline(client, responder, incident):
    response = client_for(client, responder).post(reverse("incidents:action", args=[incident.pk, "acknowledge"]), **HX)
    assert response.status_code == 200 and response["HX-Trigger"] == "rs-timeline-appended"
    incident.refresh_from_db()
    assert incident.status == Status.INVESTIGATING and incident.commander == responder
    assert 'data-status="investigating"' in response.content.decode()
    assert incident.timeline.filter(kind=EventKind.STATUS_CHANGE, message__contains="investigating").exists()


def test_invalid_transition_is_shown_inline(client, responder, incident):
    client_for(client, responder)
    client.post(reverse("incidents:action", args=[incident.pk, "resolve"]), **HX)
    response = client.post(reverse("incidents:action", args=[incident.pk, "mitigate"]), **HX)
    assert response.status_code == 409
    assert "cannot go from resolved to mitigated" in response.content.decode()


def test_plain_form_post_redirects_back(client, responder, incident):
    response = client_for(client, responder).post(reverse("incidents:action", args=[incident.pk, "mitigate"]))
    assert response.status_code == 302 and response["Location"] == reverse("incidents:detail", args=[incident.pk])


def test_comment_and_tasks(client, responder, incident):
    client_for(client, responder)
    response = client.post(reverse("incidents:comment", args=[incident.pk]), {"message": "Rolling back 1.4.2"}, **HX)
    assert response.status_code == 200 and response["HX-Trigger"] == "rs-timeline-appended"
    assert incident.timeline.filter(kind=EventKind.COMMENT, message="Rolling back 1.4.2", actor=responder.username).exists()
    assert client.post(reverse("incidents:comment", args=[incident.pk]), {"message": "  "}, **HX).status_code == 422
    response = client.post(reverse("incidents:add-task", args=[incident.pk]), {"title": "Write the review"}, **HX)
    assert response.status_code == 200 and response["HX-Trigger"] == "rs-task-updated"
    task = incident.tasks.get()
    response = client.post(reverse("incidents:toggle-task", args=[incident.pk, task.pk]), **HX)
    task.refresh_from_db()
    assert task.done and "Mark not done: Write the review" in response.content.decode()


def test_viewer_sees_no_action_buttons_and_cannot_post(client, viewer, incident):
    html = client_for(client, viewer).get(reverse("incidents:detail", args=[incident.pk])).content.decode()
    assert "data-action=" not in html and 'name="message"' not in html and "Add a task" not in html
    for url in (reverse("incidents:action", args=[incident.pk, "acknowledge"]), reverse("incidents:comment", args=[incident.pk]),
                reverse("incidents:add-task", args=[incident.pk])):
        assert client.post(url, {"message": "x", "title": "x"}, **HX).status_code == 403
    incident.refresh_from_db()
    assert incident.status == Status.OPEN


def test_pages_need_login(client, incident):
    for url in (reverse("incidents:list"), reverse("incidents:detail", args=[incident.pk]), reverse("incidents:services")):
        response = client.get(url)
        assert response.status_code == 302 and "/accounts/login/" in response["Location"]


def test_services_page_shows_dependencies_health_and_slo_empty_state(client, viewer, incident, shop):
    html = client_for(client, viewer).get(reverse("incidents:services")).content.decode()
    assert 'id="service-payment"' in html and incident.key in html
    assert "No SLO defined yet" in html and "no open incident" in html
    row = html[html.index('id="service-checkout"'):]
    row = row[: row.index("</tr>")]
    assert ">payment</span>" in row and ">database</span>" in row and ">frontend</span>" in row
