"""Live pages catch up on connect: the consumer over the real Redis channel layer, and the cursor
the pages render with.

A page reads the stream's cursor before its queries and sends it in its WebSocket hello; the
consumer's first message brings the events published since (or tells it to refresh everything).
"""
from __future__ import annotations

import re

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from channels.routing import URLRouter
from channels.testing import WebsocketCommunicator
from django.urls import reverse

from detection import selectors as detection_selectors
from incidents import services as incidents
from incidents import stream
from incidents.routing import websocket_urlpatterns
from reliability_studio.access import Role

pytestmark = pytest.mark.django_db(transaction=True)
WITHIN = 5  # seconds; every wait below is bounded by it
LIVE_WITHIN_MS = 10_000  # the browser's bound, for a loaded 2-core CI machine


def seq(cursor: str) -> int:
    return int(cursor.rsplit("-", 1)[1])


def subscribe(path: str, user, cursor, *, then=None, until=None):
    """Connect as `user`, say hello with `cursor`; the consumer's first message, then (after
    running `then` in a thread, as a publisher elsewhere would) the messages up to the first one
    `until` accepts."""
    async def scenario():
        communicator = WebsocketCommunicator(URLRouter(websocket_urlpatterns), path)
        communicator.scope["user"] = user
        connected, _ = await communicator.connect(timeout=WITHIN)
        assert connected
        try:
            await communicator.send_json_to({"type": "hello", "cursor": cursor})
            first = await communicator.receive_json_from(timeout=WITHIN)
            if then is not None:
                await sync_to_async(then, thread_sensitive=False)()
            rest = []
            while until is not None and not (rest and until(rest[-1])):
                rest.append(await communicator.receive_json_from(timeout=WITHIN))
            return first, rest
        finally:
            await communicator.disconnect()

    return async_to_sync(scenario)()


def test_connecting_with_an_old_cursor_brings_what_was_published_since(make_user):
    vera = make_user(Role.VIEWER, username="vera")
    before = stream.current_cursor()
    first = incidents.create_incident(title="Payment 5xx", severity="high")
    second = incidents.create_incident(title="Checkout slow", severity="low")

    catchup, live = subscribe("/ws/incidents/", vera, before,
                              then=lambda: incidents.create_incident(title="Catalog down", severity="critical"),
                              until=lambda message: message["event"] == "incident.created")

    assert catchup["event"] == "live.catchup"
    created = [e["data"]["key"] for e in catchup["events"] if e["event"] == "incident.created"]
    assert created == [first.key, second.key]  # oldest first, nothing before the cursor
    cursors = [seq(e["cursor"]) for e in catchup["events"]]
    assert cursors == sorted(cursors) and cursors[0] == seq(before) + 1 and cursors[-1] == seq(catchup["cursor"])
    # After the catch-up the subscription carries on with live events, numbered after it.
    assert live[-1]["data"]["title"] == "Catalog down"
    assert all(seq(message["cursor"]) > seq(catchup["cursor"]) for message in live)


def test_the_cursor_of_now_brings_nothing_and_an_incident_stream_only_its_incident(make_user):
    vera = make_user(Role.VIEWER, username="vera")
    mine = incidents.create_incident(title="Payment 5xx", severity="high")
    before = stream.current_cursor()
    incidents.create_incident(title="Someone else's", severity="low")
    incidents.update_incident(incident=mine, user=None, title="Payment 5xx (EU)")

    catchup, _ = subscribe(f"/ws/incidents/{mine.pk}/", vera, before)
    assert catchup["event"] == "live.catchup" and catchup["events"]
    assert {e["data"].get("incident", e["data"].get("id")) for e in catchup["events"]} == {mine.pk}
    assert "Someone else's" not in str(catchup["events"])

    now, _ = subscribe("/ws/incidents/", vera, stream.current_cursor())
    assert now == {"event": "live.catchup", "cursor": now["cursor"], "events": []}


@pytest.mark.parametrize("cursor", ["", None, "nonsense", "0000-1", 42])
def test_a_cursor_that_cannot_be_served_says_refresh_everything(make_user, cursor):
    vera = make_user(Role.VIEWER, username="vera")
    resync, _ = subscribe("/ws/incidents/", vera, cursor)
    assert resync["event"] == "live.resync" and resync["cursor"] == stream.current_cursor()


def test_a_cursor_older_than_the_ring_says_refresh_everything(make_user, settings):
    vera = make_user(Role.VIEWER, username="vera")
    settings.LIVE_CATCHUP_EVENTS = 3
    old = stream.current_cursor()
    for n in range(5):  # at least one event each: more than the 3 kept
        incidents.create_incident(title=f"Incident {n}", severity="low")
    resync, _ = subscribe("/ws/incidents/", vera, old)
    assert resync["event"] == "live.resync"
    recent = f"{old.rsplit('-', 1)[0]}-{seq(resync['cursor']) - 3}"
    catchup, _ = subscribe("/ws/incidents/", vera, recent)
    assert catchup["event"] == "live.catchup" and len(catchup["events"]) == 3


def test_an_event_committed_while_the_page_queries_comes_with_the_catch_up(client, make_user, monkeypatch):
    """The cursor is read before the page's queries: an event committed during them is after it."""
    vera = make_user(Role.VIEWER, username="vera")
    real = detection_selectors.active_alerts
    during = {}

    def active_alerts_with_a_write_in_the_middle(*args, **kwargs):
        during["incident"] = incidents.create_incident(title="Opened mid-render", severity="high")
        return real(*args, **kwargs)

    monkeypatch.setattr(detection_selectors, "active_alerts", active_alerts_with_a_write_in_the_middle)
    client.force_login(vera)
    html = client.get(reverse("detection:status")).content.decode()
    cursor = re.search(r'<body[^>]* data-cursor="([^"]+)"', html).group(1)

    catchup = stream.catch_up(cursor)
    assert catchup["event"] == "live.catchup"
    assert during["incident"].key in [e["data"].get("key") for e in catchup["events"]]


def test_every_live_page_renders_with_a_cursor(client, make_user):
    vera = make_user(Role.VIEWER, username="vera")
    incident = incidents.create_incident(title="Payment 5xx", severity="high")
    client.force_login(vera)
    pages = [reverse("incidents:list"), reverse("incidents:services"), reverse("incidents:detail", args=[incident.pk]),
             reverse("detection:status"), "/slos/"]
    for url in pages:
        html = client.get(url).content.decode()
        body = re.search(r"<body[^>]*>", html).group(0)
        assert "data-live-url=" in body, url
        cursor = re.search(r'data-cursor="([^"]*)"', body)
        assert cursor and stream.CURSOR.match(cursor.group(1)), url


# --- in a real browser ---------------------------------------------------------------------------

@pytest.fixture
def served(browser, make_user):
    """daphne on this test's database and a signed-in viewer's page (on the incident list)."""
    from django.db import connection

    from ..servers import Daphne, server_env
    from .browser import VIEWPORT, sign_in, wait_live

    make_user(Role.VIEWER, username="vera")
    server = Daphne(server_env(connection.settings_dict["NAME"]))
    context = browser.new_context(viewport=VIEWPORT, base_url=server.url)
    try:
        page = context.new_page()
        sign_in(page, server.url, "vera")
        page.wait_for_url(f"{server.url}/")
        wait_live(page, timeout=LIVE_WITHIN_MS)  # the list page's socket is up before a test routes sockets
        yield server, page
    finally:
        context.close()
        server.stop()


def region_requests(page) -> list[str]:
    seen: list[str] = []
    page.on("request", lambda request: "/regions/" in request.url and seen.append(request.url))
    return seen


@pytest.mark.slow
def test_an_alert_firing_between_render_and_subscription_appears_without_reload_or_polling(served):
    """The event is published after the page's HTML was served and before its WebSocket reaches
    the server (the connection is held by playwright's routing until it has been published)."""
    from detection.evaluation import Observation
    from detection.models import Alert, DetectionRule, RuleKind
    from detection import services as detection
    from django.utils import timezone

    from ..factories import ServiceFactory
    from .browser import off_loop, wait_live

    server, page = served
    ServiceFactory(slug="payment")
    rule = DetectionRule.objects.create(name="Payment error ratio", kind=RuleKind.THRESHOLD, query="x", threshold=0.05,
                                        severity="high", for_seconds=0, recovery_hold_seconds=0)
    held = []

    def publish_then_connect(ws):
        if not held and page.url.endswith("/detection/"):  # the detection page's first connection
            held.append(ws.url)
            off_loop(detection.apply_observations, rule=rule, now=timezone.now(),
                     observations=[Observation({"service": "payment"}, 0.42, True)])
        ws.connect_to_server()

    page.route_web_socket(re.compile(r"/ws/incidents/$"), publish_then_connect)
    fetched = region_requests(page)
    response = page.goto("/detection/")
    page.evaluate("window.__sameDocument = true")
    assert 'id="alert-' not in response.text() and held  # rendered before the alert existed

    alert = Alert.objects.get(rule=rule)
    row = page.locator(f'#alert-{alert.pk}[data-state="firing"]')
    row.wait_for(timeout=LIVE_WITHIN_MS)
    assert "0.42" in row.inner_text() and alert.incident.key in row.inner_text()
    wait_live(page, timeout=LIVE_WITHIN_MS)
    assert page.locator("[hx-trigger*='every']").count() == 0  # no region polls
    assert page.evaluate("window.__sameDocument") is True
    assert any("/detection/regions/alerts/" in url for url in fetched)

    # Nothing published since the render: the catch-up is empty and no region is fetched again
    # (before, every connection re-fetched every region).
    fetched.clear()
    page.goto("/detection/")
    wait_live(page, timeout=LIVE_WITHIN_MS)
    assert fetched == []


@pytest.mark.slow
def test_the_socket_connects_only_once_htmx_has_set_up_the_regions(served):
    """The incident page loads its chart scripts after live.js. While the parser waits for one,
    the socket must not open: a catch-up trigger fired before htmx processed the regions would be
    lost. Holding uPlot's request makes that window as long as the test wants."""
    from .browser import off_loop, wait_live

    server, page = served
    incident = incidents.create_incident(title="Payment 5xx", severity="high")
    page.add_init_script("""(() => {
      const Real = window.WebSocket; window.__sockets = 0;
      window.WebSocket = function (...args) { window.__sockets += 1; return new Real(...args); };
      window.WebSocket.prototype = Real.prototype; Object.assign(window.WebSocket, Real);
    })();""")
    held = []
    page.route("**/uPlot.iife.min.js", lambda route: held.append(route))

    page.goto(f"/incidents/{incident.pk}/", wait_until="commit")
    page.locator("body[data-live-state=connecting]").wait_for(state="attached", timeout=LIVE_WITHIN_MS)  # live.js ran
    page.wait_for_function("() => document.readyState === 'loading'", timeout=LIVE_WITHIN_MS)
    deadline_ms = LIVE_WITHIN_MS
    while not held and deadline_ms > 0:  # bounded: the request is already on its way
        page.wait_for_timeout(20)
        deadline_ms -= 20
    assert held and page.evaluate("window.__sockets") == 0

    off_loop(incidents.add_comment, incident=incident, user=None, message="written while the page loads")
    held[0].continue_()
    page.locator("#region-timeline", has_text="written while the page loads").wait_for(timeout=LIVE_WITHIN_MS)
    wait_live(page, timeout=LIVE_WITHIN_MS)
    assert page.evaluate("window.__sockets") == 1
