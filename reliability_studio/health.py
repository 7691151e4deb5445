"""Liveness and readiness probes.

/healthz answers as long as the process serves requests. /readyz checks what the product needs to
do its work: Postgres, Redis (channel layer and cache) and the Celery broker, each with a short
timeout, and answers 503 with the failing check named when one is down. The body names the check and
a generic reason only: exception texts carry hosts, ports and database user names, so they go to the
log, never to an unauthenticated client.
"""
from __future__ import annotations

import logging
import time

import redis as redis_lib
from django.conf import settings
from django.db import DatabaseError, connection
from django.http import JsonResponse
from kombu import Connection
from kombu.exceptions import OperationalError as KombuOperationalError

from . import observability

CHECK_TIMEOUT = 2.0
logger = logging.getLogger(__name__)
CONNECTION_ERRORS = (OSError, redis_lib.ConnectionError, KombuOperationalError, DatabaseError)


def _postgres() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")


def _redis() -> None:
    redis_lib.Redis.from_url(settings.REDIS_URL, socket_timeout=CHECK_TIMEOUT, socket_connect_timeout=CHECK_TIMEOUT).ping()


def _broker() -> None:
    with Connection(settings.CELERY_BROKER_URL, connect_timeout=CHECK_TIMEOUT) as conn:
        conn.ensure_connection(max_retries=1, timeout=CHECK_TIMEOUT)


CHECKS = {"postgres": _postgres, "redis": _redis, "celery_broker": _broker}


def _reason(exc: BaseException) -> str:
    """A reason without the details (no host, port, user or database name)."""
    chain = []
    while exc is not None and len(chain) < 5:
        chain.append(exc)
        exc = exc.__cause__ or exc.__context__
    text = " ".join(str(e).lower() for e in chain)
    if "authentication" in text or "password" in text or any(isinstance(e, redis_lib.AuthenticationError) for e in chain):
        return "Authentication failed"
    if "timeout" in text or "timed out" in text or any(isinstance(e, (TimeoutError, redis_lib.TimeoutError)) for e in chain):
        return "Timed out"
    if any(isinstance(e, CONNECTION_ERRORS) for e in chain):
        return "Connection failed"
    return "Check failed"


def healthz(request):
    return JsonResponse({"status": "ok"})


def readyz(request):
    results, ready = {}, True
    for name, check in CHECKS.items():
        started = time.perf_counter()
        try:
            check()
            results[name] = {"ok": True, "ms": round((time.perf_counter() - started) * 1000, 1)}
        except Exception as exc:  # every failure mode of a dependency means "not ready"
            ready = False
            results[name] = {"ok": False, "error": _reason(exc)}
            logger.warning("readiness check %s failed: %s: %s", name, type(exc).__name__, exc)
    heartbeat = None
    if results["redis"]["ok"]:
        raw = observability.redis().get(observability.HEARTBEAT_KEY)
        heartbeat = round(time.time() - float(raw), 1) if raw else None
    body = {"status": "ready" if ready else "unavailable", "checks": results, "celery_heartbeat_age_s": heartbeat}
    return JsonResponse(body, status=200 if ready else 503)
