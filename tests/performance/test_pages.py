"""The control room's live partials (the incident list's table, the incident page's own regions):
a statement budget each, so an N+1 fails here, and conditional GETs — the same state twice → 304
after one version statement, any change the partial shows, made through the services → 200 with a
new tag. The last test checks in Chromium that htmx's re-fetches are revalidated by the browser."""
from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from incidents import services
from incidents.models import Severity, Status

from ..factories import ServiceFactory

pytestmark = pytest.mark.django_db
HX = {"HTTP_HX_REQUEST": "true"}
OWN_REGIONS = ("header", "timeline", "tasks", "blast-radius")


@pytest.fixture(autouse=True)
def same_minute(monkeypatch):
    """The list's tag holds the current minute: hold it still, so a test never straddles two."""
    from incidents import views

    monkeypatch.setattr(views, "_minute", lambda: 29_000_000)


@pytest.fixture
def world(responder):
    catalog = [ServiceFactory(slug=f"svc-{n}") for n in range(5)]
    catalog[1].depends_on.add(catalog[0])
    catalog[2].depends_on.add(catalog[1])
    incidents = []
    for n in range(30):  # enough rows that an N+1 would blow every budget below
        incident = services.create_incident(
            title=f"Incident {n}", severity=Severity.HIGH, primary_service=catalog[n % 5],
            affected_services=[catalog[n % 5], catalog[(n + 1) % 5]], commander=responder)
        services.create_task(incident=incident, title=f"Task {n}", owner=responder)
        services.add_comment(incident=incident, user=responder, message=f"Looking {n}")
        incidents.append(incident)
    services.transition_incident(incident=incidents[-1], to=Status.RESOLVED, user=responder)  # "recently resolved"
    return {"catalog": catalog, "incidents": incidents, "main": incidents[0], "other": incidents[1]}


def signed_in(client, user):
    client.force_login(user)
    client.get("/")  # the page sets the CSRF cookie, as a browser has it after signing in
    return client


@pytest.fixture
def rita(client, responder):
    return signed_in(client, responder)


def region(incident, name):
    return f"/incidents/{incident.pk}/regions/{name}/"


def revalidate(client, url):
    """GET, then GET again with its ETag: (first response, second response)."""
    first = client.get(url, **HX)
    assert first.status_code == 200 and first["ETag"].startswith('W/"'), url
    assert first["Cache-Control"] == "private, no-cache"
    return first, client.get(url, HTTP_IF_NONE_MATCH=first["ETag"], **HX)


# --- statements ------------------------------------------------------------------------------------

# session, user, role, then: the version statement, the rows (with primary service and commander),
# their affected services, the recently resolved; a service filter adds its lookup.
LIST_BUDGET = {"/": 7, "/?status=all&severity=high": 7, "/?status=all&service={svc}": 8}
# session, user, role, version, the incident (with primary service and commander), then the region's.
REGION_BUDGET = {"header": 5, "timeline": 6, "tasks": 6,
                 # affected services, dependency edges, dependents, and the layout's edges, ids, services
                 "blast-radius": 11}


@pytest.mark.parametrize("query", LIST_BUDGET)
def test_the_list_partial_has_a_statement_budget_whatever_the_number_of_rows(
        rita, world, query, django_assert_max_num_queries):
    url = query.format(svc=world["catalog"][0].pk)
    with django_assert_max_num_queries(LIST_BUDGET[query]):
        response = rita.get(url, **HX)
    assert response.status_code == 200 and b"Incident 0" in response.content


@pytest.mark.parametrize("name", REGION_BUDGET)
def test_each_region_has_a_statement_budget(rita, world, name, django_assert_max_num_queries):
    with django_assert_max_num_queries(REGION_BUDGET[name]):
        response = rita.get(region(world["main"], name), **HX)
    assert response.status_code == 200 and f'id="region-{name}"'.encode() in response.content


@pytest.mark.parametrize("url", ["/", "/?status=all&severity=high", *OWN_REGIONS])
def test_same_state_twice_is_304_without_reading_the_content(rita, world, url):
    url = region(world["main"], url) if url in OWN_REGIONS else url
    first = rita.get(url, **HX)
    with CaptureQueriesContext(connection) as queries:
        again = rita.get(url, HTTP_IF_NONE_MATCH=first["ETag"], **HX)
    assert again.status_code == 304 and again["ETag"] == first["ETag"] and not again.content
    # session, user, role, version: nothing of the content is read
    assert len(queries) == 4, "\n".join(q["sql"] for q in queries)
    assert rita.get(url, HTTP_IF_NONE_MATCH=f'"nope", {first["ETag"][2:]}', **HX).status_code == 304
    assert rita.get(url, HTTP_IF_NONE_MATCH='"nope"', **HX).status_code == 200


def test_the_list_tag_depends_on_the_filters_and_the_page_and_partial_are_kept_apart(rita, world):
    tags = {rita.get(q, **HX)["ETag"] for q in ("/", "/?status=all", "/?severity=high", "/?status=all&severity=high")}
    assert len(tags) == 4
    assert rita.get("/?severity=high&status=all", **HX)["ETag"] == rita.get("/?status=all&severity=high", **HX)["ETag"]
    page = rita.get("/")
    assert "ETag" not in page and "HX-Request" in page["Vary"] and "HX-Request" in rita.get("/", **HX)["Vary"]
    assert "ETag" not in rita.get(f"/incidents/{world['main'].pk}/")


def test_the_list_tag_moves_with_the_minute_for_resolved_n_minutes_ago(rita, world, monkeypatch):
    from incidents import views

    first = rita.get("/", **HX)
    monkeypatch.setattr(views, "_minute", lambda: 29_000_001)
    assert rita.get("/", HTTP_IF_NONE_MATCH=first["ETag"], **HX).status_code == 200


def test_the_tag_depends_on_the_role_and_the_user(client, world, responder, viewer, make_user):
    from reliability_studio.access import Role

    url = region(world["main"], "header")
    tags = {}
    for name, user in (("rita", responder), ("vera", viewer), ("rob", make_user(Role.RESPONDER))):
        client.logout()
        tags[name] = signed_in(client, user).get(url, **HX)["ETag"]
    assert len(set(tags.values())) == 3


def test_an_apps_region_and_a_missing_incident_carry_no_tag(rita, world):
    from incidents import panels

    foreign = [r.name for r in panels.regions() if r.name not in OWN_REGIONS and r.builder.__module__ != "incidents.views"]
    assert foreign  # the investigation, SLO and remediation apps register theirs
    for name in foreign:
        response = rita.get(region(world["main"], name), **HX)
        assert response.status_code == 200 and "ETag" not in response, name
    assert rita.get("/incidents/999999/regions/header/", HTTP_IF_NONE_MATCH="*", **HX).status_code == 404


CHANGES = {
    # change → the partials whose content it changes (the list: any change to any incident or service)
    "transition": (lambda w, u: services.transition_incident(incident=w["main"], to=Status.MITIGATED, user=u),
                   ("/", "header", "timeline")),
    "acknowledge": (lambda w, u: services.acknowledge_incident(incident=w["main"], user=u),
                    ("/", "header", "timeline")),
    "title": (lambda w, u: services.update_incident(incident=w["main"], user=u, title="Payment 5xx"),
              ("/", "header")),
    "affected services": (lambda w, u: services.update_incident(
        incident=w["main"], user=u, affected_services=w["catalog"][2:4]), ("/", "blast-radius")),
    "comment": (lambda w, u: services.add_comment(incident=w["main"], user=u, message="Rolled back"),
                ("timeline",)),
    "new task": (lambda w, u: services.create_task(incident=w["main"], title="Page payments"), ("tasks",)),
    "task done": (lambda w, u: services.update_task(task=w["main"].tasks.get(), done=True), ("tasks",)),
    "service renamed": (lambda w, u: services.update_service(service=w["catalog"][0], user=u, slug="payments"),
                        ("/", "header", "blast-radius")),
    "dependency added": (lambda w, u: services.set_service_dependencies(
        service=w["catalog"][3], depends_on=[w["catalog"][0]]), ("blast-radius",)),
    "dependency removed": (lambda w, u: services.set_service_dependencies(
        service=w["catalog"][2], depends_on=[]), ("blast-radius",)),
    "new service": (lambda w, u: services.create_service(slug="search"), ("blast-radius",)),
}


@pytest.mark.parametrize("change", CHANGES)
def test_a_change_a_partial_shows_gives_200_and_a_new_tag(rita, world, responder, change):
    make, shown = CHANGES[change]
    urls = {"/": "/", **{name: region(world["main"], name) for name in OWN_REGIONS}}
    before = {}
    for name, url in urls.items():
        before[name], again = revalidate(rita, url)
        assert again.status_code == 304, name
    make(world, responder)
    for name in shown:
        after = rita.get(urls[name], HTTP_IF_NONE_MATCH=before[name]["ETag"], **HX)
        assert after.status_code == 200, (change, name)
        assert after["ETag"] != before[name]["ETag"] and after.content != before[name].content, (change, name)
        assert rita.get(urls[name], HTTP_IF_NONE_MATCH=after["ETag"], **HX).status_code == 304, (change, name)


def test_a_change_to_another_incident_leaves_this_incidents_regions_at_304(rita, world, responder):
    tags = {name: rita.get(region(world["main"], name), **HX)["ETag"] for name in ("header", "timeline", "tasks")}
    other = world["other"]
    services.transition_incident(incident=other, to=Status.MITIGATED, user=responder)
    services.add_comment(incident=other, user=responder, message="Elsewhere")
    services.create_task(incident=other, title="Elsewhere")
    for name, tag in tags.items():
        assert rita.get(region(world["main"], name), HTTP_IF_NONE_MATCH=tag, **HX).status_code == 304, name


# --- in the browser --------------------------------------------------------------------------------

@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_chromium_revalidates_htmx_refetches_and_swaps_the_kept_body(make_user, monkeypatch):
    """htmx's XHR goes through the browser's HTTP cache: a re-fetch is sent with If-None-Match,
    answered 304, and htmx swaps the kept body (the region stays whole); after a change made through
    the services, the live event's re-fetch brings the new content."""
    from playwright.sync_api import sync_playwright

    from reliability_studio.access import Role
    from reliability_studio.devtools.servers import Daphne, server_env

    from ..control_room.browser import launch, new_page, off_loop

    rita = make_user(Role.RESPONDER, username="rita")
    incident = services.create_incident(title="Payment 5xx", severity=Severity.HIGH)
    services.add_comment(incident=incident, user=rita, message="First look")
    server = Daphne(server_env(connection.settings_dict["NAME"]))
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")  # playwright's loop; the ORM calls are sync
    try:
        with sync_playwright() as playwright:
            chromium = launch(playwright)
            try:
                page = new_page(chromium, server.url, "rita", next_path=f"/incidents/{incident.pk}/")
                timeline = page.locator("#region-timeline")
                seen = []

                def refetch():
                    with page.expect_response(lambda r: "/regions/timeline/" in r.url, timeout=5000) as info:
                        page.evaluate("document.body.dispatchEvent(new CustomEvent('rs-timeline-appended'))")
                    response = info.value
                    page.wait_for_function("() => !document.querySelector('.htmx-request')", timeout=5000)
                    # The page sees 200 either way (the browser answers a 304 with the kept body):
                    # what the server answered is read from its own request metrics.
                    seen.append((not_modified(server.url), response.request.all_headers().get("if-none-match"),
                                 response.headers.get("etag")))
                    return seen[-1]

                first = refetch()
                assert first[2], seen
                again = refetch()
                assert again[0] == first[0] + 1 and again[1] == first[2], seen
                assert "First look" in timeline.inner_text()  # the kept body was swapped, not an empty one

                off_loop(services.add_comment, incident=incident, user=rita, message="Rolled back the deploy")
                timeline.filter(has_text="Rolled back the deploy").wait_for(timeout=5000)
                changed = refetch()  # revalidated against the new tag, which the browser now keeps
                assert changed[0] == again[0] + 1 and changed[1] == changed[2] != first[2], seen
                assert "Rolled back the deploy" in timeline.inner_text() and "First look" in timeline.inner_text()
            finally:
                chromium.close()
    finally:
        server.stop()


def not_modified(base_url: str) -> int:
    """How many 304s the server has answered to region requests (its request histogram's count)."""
    import requests

    text = requests.get(base_url + "/metrics", timeout=5).text
    return sum(int(float(line.rsplit(" ", 1)[1])) for line in text.splitlines()
               if line.startswith("rs_http_request_duration_seconds_count") and 'status="304"' in line
               and "regions" in line)
