"""Conditional GETs on the incident list and detail: the same state twice → 304 (one statement),
any change the response shows, made through the services → 200 with a new tag."""
import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.test.utils import CaptureQueriesContext

from incidents import services
from incidents.models import Severity, Status

from ..factories import ServiceFactory

pytestmark = pytest.mark.django_db

LIST = "/api/v1/incidents/"


@pytest.fixture
def world():
    payment = ServiceFactory(slug="payment")
    checkout = ServiceFactory(slug="checkout")
    first = services.create_incident(title="Payment errors", severity=Severity.HIGH, primary_service=payment,
                                     fingerprint="rule:errors|payment")
    second = services.create_incident(title="Checkout slow", severity=Severity.LOW, primary_service=checkout)
    return {"payment": payment, "checkout": checkout, "first": first, "second": second}


@pytest.fixture
def client(api, responder):
    return api.as_user(responder)


def detail(incident):
    return f"/api/v1/incidents/{incident.pk}/"


def revalidate(client, url):
    """GET, then GET again with its ETag: returns (first response, second response)."""
    first = client.get(url)
    assert first.status_code == 200 and first["ETag"].startswith('W/"')
    return first, client.get(url, HTTP_IF_NONE_MATCH=first["ETag"])


@pytest.mark.parametrize("url", [LIST, LIST + "?active=true&severity=high", "detail"])
def test_same_state_twice_is_304_with_the_same_tag_and_costs_one_statement(client, responder, world, url):
    url = detail(world["first"]) if url == "detail" else url
    first = client.get(url)
    client.force_authenticate(get_user_model().objects.get(pk=responder.pk))  # fresh, as a token gives
    with CaptureQueriesContext(connection) as queries:
        again = client.get(url, HTTP_IF_NONE_MATCH=first["ETag"])
    assert again.status_code == 304 and again["ETag"] == first["ETag"] and not again.content
    # The role, then the version statement; the content is never read (the token lookup is not counted).
    assert len(queries) == 2, [q["sql"] for q in queries]
    # A list of tags, and the strong form of the weak tag, match too (weak comparison).
    assert client.get(url, HTTP_IF_NONE_MATCH=f'"nope", {first["ETag"][2:]}').status_code == 304
    assert client.get(url, HTTP_IF_NONE_MATCH='"nope"').status_code == 200


def test_the_tag_depends_on_the_query_string(client, world):
    tags = {client.get(LIST + q)["ETag"] for q in ("", "?page_size=1", "?page_size=1&page=2", "?ordering=severity")}
    assert len(tags) == 4
    # The order of the parameters does not matter.
    assert client.get(LIST + "?a=1&severity=high")["ETag"] == client.get(LIST + "?severity=high&a=1")["ETag"]


CHANGES = {
    "transition": lambda w, u: services.transition_incident(incident=w["first"], to=Status.MITIGATED, user=u),
    "acknowledge": lambda w, u: services.acknowledge_incident(incident=w["first"], user=u),
    "update title": lambda w, u: services.update_incident(incident=w["first"], user=u, title="Payment 5xx"),
    "affected services only": lambda w, u: services.update_incident(
        incident=w["first"], user=u, affected_services=[w["payment"], w["checkout"]]),
    # Detection merging a signal: only the affected services change (same severity, no move).
    "a signal joins a service": lambda w, u: services.open_or_update_incident(
        fingerprint="rule:errors|payment", title="x", severity=Severity.HIGH, affected_services=[w["checkout"]]),
    "service renamed": lambda w, u: services.update_service(service=w["payment"], user=u, slug="payments"),
}


@pytest.mark.parametrize("change", CHANGES)
def test_a_change_it_shows_gives_200_and_a_new_tag(client, world, responder, change):
    list_first, list_again = revalidate(client, LIST)
    detail_first, detail_again = revalidate(client, detail(world["first"]))
    assert list_again.status_code == detail_again.status_code == 304
    CHANGES[change](world, responder)
    for url, before in ((LIST, list_first), (detail(world["first"]), detail_first)):
        after = client.get(url, HTTP_IF_NONE_MATCH=before["ETag"])
        assert after.status_code == 200, (change, url)
        assert after["ETag"] != before["ETag"] and after.json() != before.json(), (change, url)
        assert client.get(url, HTTP_IF_NONE_MATCH=after["ETag"]).status_code == 304


def test_a_new_incident_changes_the_list_but_not_another_incidents_detail(client, world):
    list_first = client.get(LIST)
    detail_first = client.get(detail(world["second"]))
    services.create_incident(title="Catalog down", severity=Severity.CRITICAL, primary_service=world["payment"])
    assert client.get(LIST, HTTP_IF_NONE_MATCH=list_first["ETag"]).status_code == 200
    assert client.get(detail(world["second"]), HTTP_IF_NONE_MATCH=detail_first["ETag"]).status_code == 304


def test_a_change_to_another_incident_does_not_change_this_detail(client, world, responder):
    detail_first = client.get(detail(world["second"]))
    services.update_incident(incident=world["first"], user=responder, title="Payment 5xx")
    services.transition_incident(incident=world["first"], to=Status.RESOLVED, user=responder)
    assert client.get(detail(world["second"]), HTTP_IF_NONE_MATCH=detail_first["ETag"]).status_code == 304


def test_browsable_api_and_errors_carry_no_tag(client, world):
    assert "ETag" not in client.get(LIST, HTTP_ACCEPT="text/html")
    assert "ETag" not in client.get(LIST + "?severity=nonsense")
    assert client.get("/api/v1/incidents/999999/", HTTP_IF_NONE_MATCH="*").status_code == 404
