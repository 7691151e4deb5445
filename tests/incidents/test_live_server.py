"""End to end through a real daphne process: session login, API, and WebSocket over Redis."""
import asyncio
import json

import pytest
import requests
import websockets
from websockets.exceptions import InvalidStatus
from django.db import connection

from reliability_studio.access import Role

from ..servers import Daphne, login, server_env

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]
PASSWORD = "correct-horse-battery-staple"


@pytest.fixture
def daphne():
    server = Daphne(server_env(connection.settings_dict["NAME"]))
    yield server
    server.stop()


def ws_url(server, path="/ws/incidents/"):
    return server.url.replace("http://", "ws://") + path


def test_websocket_without_session_is_refused(daphne):
    async def attempt():
        async with websockets.connect(ws_url(daphne), origin=daphne.url):
            pass

    with pytest.raises(InvalidStatus) as refused:
        asyncio.run(attempt())
    assert refused.value.response.status_code == 403


def test_websocket_from_foreign_origin_is_refused(daphne, make_user):
    make_user(Role.VIEWER, username="vera")
    session = login(daphne.url, "vera", PASSWORD)
    cookie = f"sessionid={session.cookies['sessionid']}"

    async def attempt():
        async with websockets.connect(ws_url(daphne), origin="http://evil.example", additional_headers={"Cookie": cookie}):
            pass

    with pytest.raises(InvalidStatus):
        asyncio.run(attempt())


def test_api_create_reaches_websocket_client_after_login(daphne, make_user):
    make_user(Role.VIEWER, username="vera")
    make_user(Role.RESPONDER, username="rita")
    viewer_cookie = f"sessionid={login(daphne.url, 'vera', PASSWORD).cookies['sessionid']}"
    rita = login(daphne.url, "rita", PASSWORD)

    async def scenario():
        async with websockets.connect(ws_url(daphne), origin=daphne.url, additional_headers={"Cookie": viewer_cookie}) as ws:
            response = await asyncio.to_thread(
                rita.post,
                daphne.url + "/api/v1/incidents/",
                json={"title": "Payment 5xx", "severity": "critical"},
                headers={"X-CSRFToken": rita.cookies["csrftoken"], "Referer": daphne.url + "/"},
                timeout=5,
            )
            assert response.status_code == 201, response.text
            events = []
            while not any(e["event"] == "incident.created" for e in events):
                events.append(json.loads(await asyncio.wait_for(ws.recv(), 5)))
            return response.json(), events

    created, events = asyncio.run(scenario())
    event = next(e for e in events if e["event"] == "incident.created")
    assert event["data"]["key"] == created["key"] and event["data"]["severity"] == "critical"


def test_pages_need_login_and_role(daphne, make_user):
    anonymous = requests.get(daphne.url + "/", allow_redirects=False, timeout=5)
    assert anonymous.status_code == 302 and "/accounts/login/" in anonymous.headers["Location"]
    make_user(None, username="nobody")
    assert login(daphne.url, "nobody", PASSWORD).get(daphne.url + "/", timeout=5).status_code == 403
    make_user(Role.VIEWER, username="vera")
    page = login(daphne.url, "vera", PASSWORD).get(daphne.url + "/", timeout=5)
    assert page.status_code == 200 and "Active incidents" in page.text
