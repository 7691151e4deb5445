"""The statement budget of the hottest reads: a regression (an N+1, a second COUNT) fails here.
The client is force-authenticated with a user fresh from the database (as an API token gives one per
request), so the token's own lookup (one statement) is not counted and the role lookup is."""
import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.test.utils import CaptureQueriesContext

from incidents import services
from incidents.models import Severity

from ..factories import ServiceFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def sixty(responder):
    catalog = [ServiceFactory(slug=f"svc-{n}") for n in range(4)]
    incidents = []
    for n in range(60):  # more than a page (50)
        primary = catalog[n % 4]
        incidents.append(services.create_incident(
            title=f"Incident {n}", severity=Severity.HIGH, primary_service=primary,
            affected_services=[primary, catalog[(n + 1) % 4]], commander=responder))
    return incidents


@pytest.mark.parametrize("query", ["", "?active=true&severity=high", "?page=2", "?ordering=severity"])
def test_the_incident_list_costs_four_statements_whatever_the_page(api, responder, sixty, query):
    client = api.as_user(get_user_model().objects.get(pk=responder.pk))
    with CaptureQueriesContext(connection) as queries:
        response = client.get("/api/v1/incidents/" + query)
    assert response.status_code == 200
    rows = response.json()["results"]
    assert rows and all(len(row["affected_services"]) == 2 and row["commander"] == responder.username for row in rows)
    # role, version (count + latest changes, also the paginator's count), the page, its affected services
    assert len(queries) == 4, "\n".join(q["sql"] for q in queries)


def test_the_incident_detail_costs_four_statements(api, responder, sixty):
    client = api.as_user(get_user_model().objects.get(pk=responder.pk))
    with CaptureQueriesContext(connection) as queries:
        response = client.get(f"/api/v1/incidents/{sixty[0].pk}/")
    assert response.status_code == 200 and len(response.json()["affected_services"]) == 2
    # role, version, the incident with its primary service and commander, its affected services
    assert len(queries) == 4, "\n".join(q["sql"] for q in queries)


def test_the_json_is_what_drf_would_render(api, responder, sixty):
    """The orjson renderer: same bytes as DRF's JSONRenderer for a list page and a detail."""
    from rest_framework.renderers import JSONRenderer

    client = api.as_user(responder)
    for url in ("/api/v1/incidents/?page_size=5", f"/api/v1/incidents/{sixty[0].pk}/"):
        response = client.get(url)
        assert response.content == JSONRenderer().render(response.data), url
