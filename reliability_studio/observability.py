"""Self-observability: request metrics, incident gauges and Celery task durations at /metrics.

The web process and the Celery workers are separate processes, so task durations are aggregated in
Redis (a histogram per task) by the workers and read back by the web process at scrape time.
With METRICS_TOKEN set, a scrape must send `Authorization: Bearer <token>` (Prometheus'
`authorization` / `bearer_token` scrape option); without it the endpoint is open, as a probe is.
"""
from __future__ import annotations

import functools
import hmac
import os
import time

import redis as redis_lib
from django.conf import settings
from django.http import HttpResponse, JsonResponse
from django.urls import Resolver404, resolve
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import HistogramMetricFamily

HEARTBEAT_KEY = "rs:celery:heartbeat"
TASK_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, float("inf"))
_TASK_KEY = "rs:celery:task_duration"

REGISTRY = CollectorRegistry()  # no auto_describe: the DB collector must not run at import
# Under reliability_studio.webserver several daphne processes serve one port and a scrape reaches
# any of them: each then writes its request histogram to PROMETHEUS_MULTIPROC_DIR (set by the
# webserver) and /metrics sums every process's files, so the series do not jump between processes.
MULTIPROC_DIR = os.environ.get("PROMETHEUS_MULTIPROC_DIR", "")
REQUEST_LATENCY = Histogram(
    "rs_http_request_duration_seconds",
    "Latency of HTTP requests served by Reliability Studio.",
    ["method", "route", "status"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
    registry=None if MULTIPROC_DIR else REGISTRY,
)


@functools.cache
def redis() -> redis_lib.Redis:
    return redis_lib.Redis.from_url(settings.REDIS_URL, socket_timeout=2, socket_connect_timeout=2)


def _route_of(path: str) -> str:
    # Label by URL pattern, never by raw path: raw paths would explode the series count.
    try:
        match = resolve(path)
    except Resolver404:
        return "unmatched"
    return match.route or match.view_name or "unknown"


class RequestMetricsMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        started = time.perf_counter()
        response = self.get_response(request)
        REQUEST_LATENCY.labels(request.method, _route_of(request.path_info), str(response.status_code)).observe(
            time.perf_counter() - started
        )
        return response


def record_task_duration(task_name: str, state: str, seconds: float) -> None:
    """Add one task run to the shared histogram in Redis (called by workers)."""
    key = f"{_TASK_KEY}:{task_name}:{state}"
    pipe = redis().pipeline()
    for bound in TASK_BUCKETS:
        if seconds <= bound:
            pipe.hincrby(key, f"le:{bound}", 1)
    pipe.hincrbyfloat(key, "sum", seconds)
    pipe.hincrby(key, "count", 1)
    pipe.execute()


class _TaskCollector:
    """Reads the task histograms from Redis at scrape time."""

    def collect(self):
        hist = HistogramMetricFamily(
            "rs_celery_task_duration_seconds", "Duration of Celery tasks run by the workers.", labels=["task", "state"]
        )
        try:
            keys = list(redis().scan_iter(f"{_TASK_KEY}:*", count=500))
            for key in keys:
                task, state = key.decode().removeprefix(f"{_TASK_KEY}:").rsplit(":", 1)
                fields = {k.decode(): v.decode() for k, v in redis().hgetall(key).items()}
                buckets = [
                    ("+Inf" if b == float("inf") else str(b), int(fields.get(f"le:{b}", 0))) for b in TASK_BUCKETS
                ]
                hist.add_metric([task, state], buckets, float(fields.get("sum", 0)))
        except redis_lib.RedisError:
            pass  # /readyz reports Redis; metrics must still render without it.
        yield hist


REGISTRY.register(_TaskCollector())
_REGISTERED: set[type] = set()


def register_collector(collector) -> None:
    """Add an app's metrics to /metrics, collected at scrape time (e.g. incidents' counts, from
    IncidentsConfig.ready()): the project package never imports an app. Once per collector class."""
    if type(collector) not in _REGISTERED:
        _REGISTERED.add(type(collector))
        REGISTRY.register(collector)


def _scrape_allowed(request) -> bool:
    token = getattr(settings, "METRICS_TOKEN", "")
    if not token:
        return True
    scheme, _, offered = request.headers.get("Authorization", "").partition(" ")
    # compare_digest: the time taken does not tell how much of a guess was right.
    return scheme.lower() == "bearer" and hmac.compare_digest(offered.strip().encode(), token.encode())


def metrics_view(request):
    if not _scrape_allowed(request):
        response = JsonResponse({"message": "A bearer token is required to read the metrics.", "code": "not_authenticated"},
                                status=401)
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    return HttpResponse(generate_latest(_AllProcesses() if MULTIPROC_DIR else REGISTRY), content_type=CONTENT_TYPE_LATEST)


class _AllProcesses:
    """The request histogram summed over every web process, then the scrape-time collectors."""

    def collect(self):
        from prometheus_client.multiprocess import MultiProcessCollector

        yield from MultiProcessCollector(None, path=MULTIPROC_DIR).collect()
        yield from REGISTRY.collect()
