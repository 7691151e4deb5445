"""A WebSocket handshake does not wait for the thread that renders synchronous views.

In daphne, Django's ASGI handler runs every synchronous view in one "thread sensitive" thread per
process. Channels' session lookup and `database_sync_to_async` use that same thread, so under load a
handshake waited behind page renders until daphne's connect timeout dropped it (bench/load.py, 200
users). Here that thread is held busy, as a long render would hold it, while a client connects
through the real ASGI application (cookie session, origin check, the consumer's role check).
"""
from __future__ import annotations

import asyncio
import threading

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from channels.testing import WebsocketCommunicator

from reliability_studio.access import Role

pytestmark = pytest.mark.django_db(transaction=True)
BOUND = 10  # seconds: the handshake must finish long before the busy thread is released


def connect_while_the_sync_thread_is_busy(session_cookie: str, path: str):
    from reliability_studio.asgi import application

    release = threading.Event()

    async def scenario():
        # Thread sensitive, as Django runs a synchronous view: it occupies the one such thread.
        busy = asyncio.ensure_future(sync_to_async(release.wait, thread_sensitive=True)(3 * BOUND))
        try:
            communicator = WebsocketCommunicator(application, path, headers=[
                (b"cookie", f"sessionid={session_cookie}".encode()), (b"origin", b"http://localhost"),
            ])
            connected, code = await communicator.connect(timeout=BOUND)
            still_busy = not release.is_set() and not busy.done()
            await communicator.disconnect()
            return connected, code, still_busy
        finally:
            release.set()
            await busy

    return async_to_sync(scenario)()


def test_a_viewer_is_accepted_while_the_view_thread_is_busy(client, make_user):
    client.force_login(make_user(Role.VIEWER))
    connected, _, still_busy = connect_while_the_sync_thread_is_busy(client.cookies["sessionid"].value, "/ws/incidents/")
    assert connected and still_busy


def test_a_user_without_a_role_is_refused_while_the_view_thread_is_busy(client, make_user):
    client.force_login(make_user(None))
    connected, code, still_busy = connect_while_the_sync_thread_is_busy(client.cookies["sessionid"].value, "/ws/incidents/")
    assert not connected and code == 4403 and still_busy


def test_an_unknown_incident_is_refused_while_the_view_thread_is_busy(client, make_user):
    client.force_login(make_user(Role.VIEWER))
    connected, code, still_busy = connect_while_the_sync_thread_is_busy(client.cookies["sessionid"].value, "/ws/incidents/999999/")
    assert not connected and code == 4404 and still_busy
