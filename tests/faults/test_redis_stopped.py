"""Redis killed under a real daphne server: pages and the API keep serving; live updates resume
once it is back.

The test runs its own redis-server (never the machine's shared one): the web process uses it as
channel layer, cache and Celery broker, as in production.
"""
import asyncio
import json
import time

import pytest
import requests
import websockets
from django.db import connection

from incidents.models import Incident
from reliability_studio.access import Role

from ..servers import Daphne, login, server_env
from ..support.redis_server import RedisServer, redis_available
from .conftest import wait_for

pytestmark = [
    pytest.mark.slow,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(not redis_available(), reason="redis-server is not installed"),
]
PASSWORD = "correct-horse-battery-staple"
PAGES = ["/", "/detection/", "/slos/"]
API = ["/api/v1/incidents/", "/api/v1/rules/", "/api/v1/alerts/", "/api/v1/services/"]


def ws_url(server):
    return server.url.replace("http://", "ws://") + "/ws/incidents/"


def create_incident(session, server, title):
    response = session.post(server.url + "/api/v1/incidents/", json={"title": title, "severity": "high"},
                            headers={"X-CSRFToken": session.cookies["csrftoken"], "Referer": server.url + "/"},
                            timeout=15)
    assert response.status_code == 201, response.text
    return response.json()


async def _next_event(ws, name, key, timeout):
    deadline = time.monotonic() + timeout
    while True:
        message = json.loads(await asyncio.wait_for(ws.recv(), max(0.1, deadline - time.monotonic())))
        if message.get("event") == name and message.get("data", {}).get("key") == key:
            return message


def test_redis_killed_pages_and_api_serve_and_live_updates_resume(make_user, cleanup):
    redis = RedisServer().start()
    cleanup(redis.close)
    env = server_env(connection.settings_dict["NAME"], REDIS_URL=redis.url(0), CELERY_BROKER_URL=redis.url(0),
                     CELERY_RESULT_BACKEND=redis.url(0))
    web = Daphne(env)
    cleanup(web.stop)
    make_user(Role.VIEWER, username="vera")
    make_user(Role.RESPONDER, username="rita")
    vera, rita = login(web.url, "vera", PASSWORD), login(web.url, "rita", PASSWORD)
    cookie = {"Cookie": f"sessionid={vera.cookies['sessionid']}"}

    async def receive_one(title, timeout=10):
        """Connect, create an incident through the API, and return its incident.created event."""
        async with websockets.connect(ws_url(web), origin=web.url, additional_headers=cookie, open_timeout=5) as ws:
            created = await asyncio.to_thread(create_incident, rita, web, title)
            return await _next_event(ws, "incident.created", created["key"], timeout)

    assert asyncio.run(receive_one("before the outage"))  # the live path works with this Redis

    async def outage_closes_open_socket():
        """A socket open when Redis dies is closed (1011), not left open and deaf: the page's
        socket reconnects on close, and only a new subscription is in the new Redis' groups."""
        async with websockets.connect(ws_url(web), origin=web.url, additional_headers=cookie, open_timeout=5) as ws:
            await asyncio.to_thread(redis.stop)
            with pytest.raises(websockets.exceptions.ConnectionClosed) as closed:
                while True:
                    await asyncio.wait_for(ws.recv(), 15)
            return closed.value.rcvd.code if closed.value.rcvd else None

    assert asyncio.run(outage_closes_open_socket()) == 1011
    for path in PAGES:
        page = vera.get(web.url + path, timeout=15)
        assert page.status_code == 200, f"{path} answered {page.status_code} with Redis down"
    for path in API:
        answer = vera.get(web.url + path, timeout=15)
        assert answer.status_code == 200, f"{path} answered {answer.status_code} with Redis down: {answer.text[:300]}"
    # A write commits; only its live event (and queued side work) waits for Redis.
    during = create_incident(rita, web, "during the outage")
    assert Incident.objects.filter(pk=during["id"], title="during the outage").exists()
    ready = requests.get(web.url + "/readyz", timeout=15)
    assert ready.status_code == 503 and ready.json()["checks"]["redis"]["ok"] is False

    redis.start()  # same port, empty: groups and queues are gone, as after a real Redis restart

    def live_again():
        try:
            return asyncio.run(receive_one(f"after the outage {time.monotonic()}", timeout=5))
        except (OSError, asyncio.TimeoutError, websockets.exceptions.WebSocketException):
            return None  # the server may still be reconnecting to Redis: a client retries, as the page does

    event = wait_for(live_again, 30, "a WebSocket client to receive an event after Redis came back", interval=1)
    assert event["data"]["title"].startswith("after the outage")
    assert requests.get(web.url + "/readyz", timeout=15).status_code == 200
