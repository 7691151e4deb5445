"""WebSocket authentication that does not wait behind page renders.

Channels' `AuthMiddleware` and `database_sync_to_async` run their lookups "thread sensitive": in
one thread per process, the same thread in which Django's ASGI handler renders every synchronous
view. Under load a handshake then queues behind page renders, and daphne drops a handshake not
accepted within its connect timeout (bench/load.py saw this with 200 users). These lookups touch
no thread-bound state, so they run in the shared thread pool instead, closing the connections
they opened there.
"""
from __future__ import annotations

import functools

from asgiref.sync import sync_to_async
from channels.auth import AuthMiddleware, get_user
from channels.sessions import CookieMiddleware, SessionMiddleware
from django.db import connections


def off_thread(func):
    """`func` as a coroutine run in the thread pool. The pool thread's database connections are
    closed (given back to the pool) afterwards: the thread may never run Django code again."""
    @functools.wraps(func)
    def run_and_close(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        finally:
            connections.close_all()

    return sync_to_async(run_and_close, thread_sensitive=False)


class OffThreadAuthMiddleware(AuthMiddleware):
    """`scope["user"]` from the session, loaded in the thread pool (see the module docstring)."""

    async def resolve_scope(self, scope):
        scope["user"]._wrapped = await off_thread(get_user.func)(scope)


def AuthMiddlewareStack(inner):  # noqa: N802 (the name Channels' own stack has)
    return CookieMiddleware(SessionMiddleware(OffThreadAuthMiddleware(inner)))
