"""Failure behaviour shared by every source, over real HTTP against the fixture server.

Each case runs against Prometheus, Loki, Tempo, Grafana and Kubernetes: error
bodies surfaced, timeouts, malformed JSON, dropped and refused connections,
retries on 5xx only, circuit breaker open/half-open, and no token leaks.
"""

from __future__ import annotations

import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Callable

import pytest

from reliability_studio.telemetry import (
    GrafanaError,
    KubernetesError,
    LokiError,
    PrometheusError,
    TelemetryError,
    TempoError,
)
from reliability_studio.telemetry.grafana import GrafanaClient
from reliability_studio.telemetry.kubernetes import KubernetesClient
from reliability_studio.telemetry.loki import LokiClient
from reliability_studio.telemetry.prometheus import PrometheusClient
from reliability_studio.telemetry.tempo import TempoClient

from .conftest import FAST, TOKEN
from .fixture_server import Reply

# The official Kubernetes client's ApiException calls urllib3's deprecated getheaders().
pytestmark = pytest.mark.filterwarnings("ignore:HTTPResponse.getheaders:DeprecationWarning")


@dataclass
class Case:
    name: str
    make: Callable[..., Any]
    call: Callable[[Any], Any]
    error_cls: type[TelemetryError]
    method: str
    path: str
    client_error: Reply  # a realistic 4xx with the backend's own error body
    client_error_text: str
    client_error_kind: str
    server_error: Reply  # a realistic 5xx


K8S_FORBIDDEN = {
    "kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "Forbidden", "code": 403,
    "message": 'pods is forbidden: User "system:serviceaccount:rs:studio" cannot list '
               'resource "pods" in API group "" in the namespace "shop"',
}
K8S_UNAVAILABLE = {"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": 503,
                   "message": "the server is currently unable to handle the request"}

CASES = [
    Case(
        "prometheus",
        lambda url, **kw: PrometheusClient(url, token=TOKEN, **kw),
        lambda c: c.query("up"),
        PrometheusError, "POST", "/api/v1/query",
        Reply(400, {"status": "error", "errorType": "bad_data",
                    "error": 'invalid parameter "query": 1:24: parse error: unclosed left parenthesis'}),
        "unclosed left parenthesis", "bad_data",
        Reply(503, {"status": "error", "errorType": "unavailable", "error": "TSDB not ready"}),
    ),
    Case(
        "loki",
        lambda url, **kw: LokiClient(url, token=TOKEN, tenant="team-a", **kw),
        lambda c: c.query_range('{job="varlogs"}', 1569266490, 1569266500),
        LokiError, "GET", "/loki/api/v1/query_range",
        Reply(400, "parse error at line 1, col 6: syntax error: unexpected IDENTIFIER\n", "text/plain"),
        "syntax error: unexpected IDENTIFIER", "bad_data",
        Reply(500, "rpc error: code = Unavailable desc = too many unhealthy instances in the ring\n",
              "text/plain"),
    ),
    Case(
        "tempo",
        lambda url, **kw: TempoClient(url, token=TOKEN, **kw),
        lambda c: c.search("{ status = error }"),
        TempoError, "GET", "/api/search",
        Reply(400, "invalid TraceQL query: parse error at line 1, col 3: syntax error\n", "text/plain"),
        "invalid TraceQL query", "bad_data",
        Reply(502, "upstream connect error\n", "text/plain"),
    ),
    Case(
        "grafana",
        lambda url, **kw: GrafanaClient(url, token=TOKEN, **kw),
        lambda c: c.find_annotations(["incident"]),
        GrafanaError, "GET", "/api/annotations",
        Reply(403, {"message": "You'll need additional permissions to perform this action. "
                               "Permissions needed: annotations:read"}),
        "Permissions needed: annotations:read", "http",
        Reply(500, {"message": "Internal Server Error"}),
    ),
    Case(
        "kubernetes",
        lambda url, **kw: KubernetesClient(host=url, token=TOKEN, **kw),
        lambda c: c.pods("shop"),
        KubernetesError, "GET", "/api/v1/namespaces/shop/pods",
        Reply(403, K8S_FORBIDDEN), 'cannot list resource "pods"', "http",
        Reply(503, K8S_UNAVAILABLE),
    ),
]


@pytest.fixture(params=CASES, ids=[c.name for c in CASES])
def case(request) -> Case:
    return request.param


def make(case: Case, url: str, **overrides: Any):
    return case.make(url, **{**FAST, **overrides})


def test_sends_bearer_token(case, fixture_server):
    case.call(make(case, fixture_server.url))
    [req] = fixture_server.matching(case.path, case.method)
    assert req.headers["authorization"] == f"Bearer {TOKEN}"


def test_http_error_body_is_surfaced_and_not_retried(case, fixture_server):
    fixture_server.route(case.method, case.path, case.client_error)
    with pytest.raises(case.error_cls) as info:
        case.call(make(case, fixture_server.url))
    err = info.value
    assert err.status == case.client_error.status
    assert err.kind == case.client_error_kind
    assert case.client_error_text in str(err)
    assert err.source == case.name
    assert fixture_server.hits(case.path) == 1  # 4xx: never retried


def test_5xx_is_retried_then_succeeds(case, fixture_server, fixtures_dir):
    success = fixture_server.routes[(case.method, case.path)].replies[-1]
    fixture_server.route(case.method, case.path, case.server_error, case.server_error, success)
    case.call(make(case, fixture_server.url, retries=2))
    assert fixture_server.hits(case.path) == 3


def test_5xx_retries_are_bounded(case, fixture_server):
    fixture_server.route(case.method, case.path, case.server_error)
    with pytest.raises(case.error_cls) as info:
        case.call(make(case, fixture_server.url, retries=2))
    assert info.value.status == case.server_error.status
    assert info.value.retryable
    assert fixture_server.hits(case.path) == 3  # 1 + 2 retries, nothing more


def test_timeout(case, fixture_server):
    fixture_server.route(case.method, case.path, Reply(200, b"{}", delay=0.8))
    client = make(case, fixture_server.url, timeout=0.2, retries=1)
    started = time.monotonic()
    with pytest.raises(case.error_cls) as info:
        case.call(client)
    assert info.value.kind == "timeout"
    assert info.value.status is None
    assert fixture_server.hits(case.path) == 2  # timeouts are retried too
    assert time.monotonic() - started < 1.2


def test_malformed_json(case, fixture_server):
    fixture_server.route(case.method, case.path, Reply(200, b'{"status": "success", "data": ['))
    with pytest.raises(case.error_cls) as info:
        case.call(make(case, fixture_server.url))
    assert info.value.kind == "bad_response"
    assert fixture_server.hits(case.path) == 1


def test_connection_dropped_by_server(case, fixture_server):
    fixture_server.route(case.method, case.path, Reply(close=True))
    with pytest.raises(case.error_cls) as info:
        case.call(make(case, fixture_server.url, retries=1))
    assert info.value.kind == "connection"
    assert fixture_server.hits(case.path) == 2


def test_connection_refused(case, closed_port_url):
    with pytest.raises(case.error_cls) as info:
        case.call(make(case, closed_port_url, retries=0))
    assert info.value.kind == "connection"
    assert "refused" in str(info.value).lower()


def test_breaker_opens_then_half_opens(case, fixture_server):
    success = fixture_server.routes[(case.method, case.path)].replies[-1]
    fixture_server.route(case.method, case.path, case.server_error)
    client = make(case, fixture_server.url, retries=0, breaker_fail_max=3, breaker_reset_seconds=0.5)
    for _ in range(3):
        with pytest.raises(case.error_cls) as info:
            case.call(client)
        assert info.value.status == case.server_error.status  # the real error, even on the trip
    assert client.resilience.state == "open"

    with pytest.raises(case.error_cls) as info:
        case.call(client)
    assert info.value.kind == "circuit_open"
    assert f"{case.name} circuit open; retry after" in str(info.value)
    assert fixture_server.hits(case.path) == 3  # nothing reached the server while open

    time.sleep(0.6)
    fixture_server.route(case.method, case.path, success)
    case.call(client)  # half-open trial succeeds...
    assert client.resilience.state == "closed"  # ...and closes the circuit
    assert fixture_server.hits(case.path) == 4


def test_breaker_reopens_when_trial_fails(case, fixture_server):
    fixture_server.route(case.method, case.path, case.server_error)
    client = make(case, fixture_server.url, retries=0, breaker_fail_max=2, breaker_reset_seconds=0.3)
    for _ in range(2):
        with pytest.raises(case.error_cls):
            case.call(client)
    time.sleep(0.4)
    with pytest.raises(case.error_cls) as info:
        case.call(client)  # the half-open trial reaches the server and fails
    assert info.value.status == case.server_error.status
    with pytest.raises(case.error_cls) as info:
        case.call(client)
    assert info.value.kind == "circuit_open"
    assert fixture_server.hits(case.path) == 3


def test_4xx_does_not_trip_breaker(case, fixture_server):
    fixture_server.route(case.method, case.path, case.client_error)
    client = make(case, fixture_server.url, breaker_fail_max=2)
    for _ in range(5):
        with pytest.raises(case.error_cls) as info:
            case.call(client)
        assert info.value.kind == case.client_error_kind
    assert client.resilience.state == "closed"
    assert fixture_server.hits(case.path) == 5


def test_token_never_in_logs_errors_or_reprs(case, fixture_server, closed_port_url, caplog):
    caplog.set_level(logging.DEBUG)
    client = make(case, fixture_server.url, breaker_fail_max=100, timeout=0.15, retries=1)
    case.call(client)
    errors: list[TelemetryError] = []
    # A misbehaving proxy echoing the credentials back in its error body.
    echo = Reply(401, f"invalid credentials: Authorization: Bearer {TOKEN}\n", "text/plain")
    for reply in (echo, case.server_error, Reply(200, b"{}", delay=0.5), Reply(close=True)):
        fixture_server.route(case.method, case.path, reply)
        with pytest.raises(case.error_cls) as info:
            case.call(client)
        errors.append(info.value)
    with pytest.raises(case.error_cls) as info:
        case.call(make(case, closed_port_url, retries=0))
    errors.append(info.value)

    assert "***" in str(errors[0])
    for err in errors:
        assert TOKEN not in str(err) and TOKEN not in repr(err)
    assert TOKEN not in repr(client)
    assert caplog.records, "expected debug/retry log output to inspect"
    assert TOKEN not in caplog.text


def test_concurrent_calls_are_not_serialised(fixture_server):
    # pybreaker's CircuitBreaker.call() holds a lock for the whole call; the
    # client must not, or one slow query would block every other request.
    body = (fixture_server.fixtures_dir / "telemetry-api/prometheus-query-vector.json").read_bytes()
    fixture_server.route("POST", "/api/v1/query", Reply(200, body, delay=0.3))
    client = PrometheusClient(fixture_server.url, **{**FAST, "timeout": 2})
    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=6) as pool:
        results = list(pool.map(lambda _: client.query("up"), range(6)))
    assert all(len(r.samples) == 2 for r in results)
    assert time.monotonic() - started < 1.0  # serialised would take >= 1.8 s
