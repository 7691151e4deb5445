"""One shop service: its HTTP server, request handling, downstream calls and metrics."""

from __future__ import annotations

import random
import threading
import time
from dataclasses import dataclass

import requests
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram
from prometheus_client import generate_latest
from prometheus_client.core import GaugeMetricFamily
from requests.adapters import HTTPAdapter

from .faults import KINDS, FaultBoard
from .httpserver import TrackedServer, json_response
from .telemetry import (Span, Telemetry, exception_event, new_span_id, new_trace_id,
                        parse_traceparent)
from .topology import SLOW_THRESHOLD_MS, Call, Service, service_port

BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0)
POOL_WAIT_S = 0.1  # how long a request waits for a free client connection before giving up
CONNECT_ATTEMPTS = 2  # connection errors are retried once: the request never reached the callee


@dataclass
class CallOutcome:
    """Result of one downstream call; ``status`` is what *this* service answers on failure."""

    ok: bool
    status: int = 200
    message: str = ""
    # Set for network-level failures (refused, reset, timeout): the client span's exception event.
    exception: str | None = None
    attempts: int = 1


class _FaultGaugeCollector:
    """Exposes ``demo_fault_active{service,kind}`` from the live fault board at scrape time."""

    def __init__(self, service: str, faults: FaultBoard) -> None:
        self._service, self._faults = service, faults

    def collect(self):  # noqa: D102 - prometheus_client collector protocol
        gauge = GaugeMetricFamily("demo_fault_active", "1 while a fault of this kind is injected",
                                  labels=["service", "kind"])
        state = self._faults.get(self._service)
        for kind in KINDS:
            gauge.add_metric([self._service, kind], 1.0 if state.active(kind) else 0.0)
        yield gauge


class ServiceRuntime:
    """A running shop service on its own port with its own metrics registry."""

    def __init__(self, spec: Service, host: str, base_port: int, faults: FaultBoard,
                 telemetry: Telemetry, rng: random.Random | None = None) -> None:
        self.spec = spec
        self.name = spec.name
        self.host = host
        self.port = service_port(spec.name, base_port)
        self.base_port = base_port
        # Binding to all interfaces still means calling peers over loopback.
        self.call_host = "127.0.0.1" if host in ("", "0.0.0.0") else host
        self.faults = faults
        self.telemetry = telemetry
        self.rng = rng or random.Random()
        self._server: TrackedServer | None = None
        self._server_lock = threading.Lock()
        # Bumped on every stop: requests begun before a crash stay silent after it (a crashed
        # process writes no more logs or spans), even if they finish after a recovery.
        self._epoch = 0
        self._pools = {callee: threading.BoundedSemaphore(spec.pool_size) for callee in spec.calls}
        self.session = requests.Session()
        self.session.trust_env = False  # peers are on loopback; never route them via a proxy
        adapter = HTTPAdapter(pool_connections=len(spec.calls) or 1, pool_maxsize=spec.pool_size)
        self.session.mount("http://", adapter)
        self._init_metrics()

    def _init_metrics(self) -> None:
        self.registry = CollectorRegistry()
        self.requests_total = Counter(
            "http_requests_total", "HTTP requests served, by route and status code",
            ["service", "route", "code"], registry=self.registry)
        self.duration = Histogram(
            "http_request_duration_seconds", "Time to serve an HTTP request",
            ["service", "route"], buckets=BUCKETS, registry=self.registry)
        self.registry.register(_FaultGaugeCollector(self.name, self.faults))
        # Pre-create the 200 and 500 series so error-ratio queries see 0, not "no data".
        for route in self.spec.routes:
            for code in ("200", "500"):
                self.requests_total.labels(self.name, route.path, code)
            self.duration.labels(self.name, route.path)

    # -- lifecycle -------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        """Whether the service currently accepts connections."""
        return self._server is not None

    def start(self) -> None:
        """Bind the port and serve (idempotent)."""
        with self._server_lock:
            if self._server is None:
                self._server = TrackedServer((self.host, self.port), self._handle)
                self._server.serve_in_thread(f"svc-{self.name}")

    def stop(self) -> None:
        """Close the port and cut open connections, like a crashed process (idempotent)."""
        with self._server_lock:
            server, self._server = self._server, None
            self._epoch += 1
        if server is not None:
            server.close()

    # -- telemetry, silent once crashed ----------------------------------------------------

    def _alive(self, ctx: dict) -> bool:
        return ctx["_epoch"] == self._epoch and not self.faults.get(self.name).crashed

    def _log(self, ctx: dict, level: str, msg: str, **fields: object) -> None:
        if self._alive(ctx):
            self.telemetry.log(self.name, level, msg,
                               **{k: v for k, v in ctx.items() if not k.startswith("_")}, **fields)

    def _span(self, ctx: dict, span: Span) -> None:
        if self._alive(ctx):
            self.telemetry.span(span)

    # -- request handling ------------------------------------------------------------------

    def _handle(self, method: str, path: str, headers: dict, body: bytes):
        path = path.split("?", 1)[0]
        if path == "/metrics" and method == "GET":
            return 200, CONTENT_TYPE_LATEST, generate_latest(self.registry)
        started = time.perf_counter()
        start_ns = time.time_ns()
        parent = parse_traceparent(headers.get("traceparent"))
        trace_id, parent_id = parent if parent else (new_trace_id(), None)
        span_id = new_span_id()
        route = self.spec.route(method, path)
        ctx = {"method": method, "route": route.path if route else "unmatched",
               "trace_id": trace_id, "span_id": span_id, "_epoch": self._epoch, "_events": []}
        status, message = self._serve(route, ctx) if route else (404, "no such route")
        duration = time.perf_counter() - started
        self.requests_total.labels(self.name, ctx["route"], str(status)).inc()
        self.duration.labels(self.name, ctx["route"]).observe(duration)
        level = "error" if status >= 500 else "warn" if status >= 400 else "info"
        self._log(ctx, level, f"{method} {ctx['route']} {status}", status=status,
                  duration_ms=round(duration * 1000, 1))
        attributes = {"http.request.method": method, "http.route": ctx["route"],
                      "http.response.status_code": status}
        if status >= 500:
            attributes["error.type"] = ctx.get("_error_type") or str(status)
        self._span(ctx, Span(
            self.name, f"{method} {ctx['route']}", "server", trace_id, span_id, parent_id,
            start_ns, time.time_ns(), attributes,
            error=message if status >= 500 else None, events=ctx["_events"]))
        document = {"service": self.name, "status": status}
        if message:
            document["error"] = message
        return json_response(status, document)

    def _serve(self, route, ctx: dict) -> tuple[int, str]:
        """Apply faults, do the route's work and calls; return (status, error message)."""
        state = self.faults.get(self.name)
        local_started = time.perf_counter()
        add_ms = state.add_ms
        if add_ms:
            time.sleep(add_ms / 1000)
        time.sleep(route.work_ms * self.rng.uniform(0.5, 1.5) / 1000)
        local_ms = (time.perf_counter() - local_started) * 1000
        if local_ms >= SLOW_THRESHOLD_MS:
            # Only the service's own time counts: its callers are slow too, but don't say so.
            self._log(ctx, "warn", self.spec.slow_message.format(
                ms=round(local_ms), threshold=SLOW_THRESHOLD_MS, method=ctx["method"],
                route=ctx["route"]), took_ms=round(local_ms, 1))
        sampler = state.error
        # Decided before any downstream call, so the injected rate is exactly this service's own.
        if sampler is not None and sampler.draw():
            message, wait_ms = self.spec.failure.render(self.rng, max=self.spec.pool_size)
            if wait_ms:
                time.sleep(wait_ms / 1000)
            exc_type = self.spec.failure.exception
            ctx["_error_type"] = exc_type
            ctx["_events"].append(exception_event(exc_type, message))
            self._log(ctx, "error", message, status=500, error_type=exc_type)
            return 500, message
        for call in route.calls:
            outcome = self._call(call, ctx)
            if outcome.ok:
                continue
            if call.optional:
                self._log(ctx, "warn", f"{outcome.message}; degrading response",
                          upstream=call.service)
                continue
            extra = {"attempts": outcome.attempts} if outcome.exception else {}
            self._log(ctx, "error", outcome.message, status=outcome.status,
                      upstream=call.service, **extra)
            return outcome.status, outcome.message
        return 200, ""

    def _call(self, call: Call, ctx: dict) -> CallOutcome:
        """Call a downstream service over HTTP with a timeout and a bounded connection pool."""
        pool = self._pools[call.service]
        if not pool.acquire(timeout=POOL_WAIT_S):
            return CallOutcome(False, 503, f"no free connection to {call.service} within "
                                           f"{int(POOL_WAIT_S * 1000)}ms (client pool "
                                           f"max={self.spec.pool_size}); request rejected")
        try:
            return self._call_with_span(call, ctx)
        finally:
            pool.release()

    def _call_with_span(self, call: Call, ctx: dict) -> CallOutcome:
        span_id = new_span_id()
        start_ns = time.time_ns()
        port = service_port(call.service, self.base_port)
        address = f"{self.call_host}:{port}"
        url = f"http://{address}{call.path}"
        headers = {"traceparent": f"00-{ctx['trace_id']}-{span_id}-01"}
        timeout_ms = int(call.timeout_s * 1000)
        outcome = CallOutcome(True)
        status = None
        for attempt in range(1, CONNECT_ATTEMPTS + 1):
            try:
                response = self.session.request(call.method, url, headers=headers,
                                                timeout=(0.5, call.timeout_s))
                status = response.status_code
                if status >= 400:
                    # Charges are not idempotent: an HTTP error is never retried.
                    outcome = CallOutcome(False, 502, f"upstream {call.service} failed: {status} "
                                                      f"({call.method} {call.path})")
                break
            except requests.Timeout:
                outcome = CallOutcome(False, 504, f"upstream {call.service} request timeout after "
                                                  f"{timeout_ms}ms ({call.method} {call.path})",
                                      exception="TimeoutError", attempts=attempt)
                break
            except requests.ConnectionError as exc:
                # Connection errors are retried once: the request never reached the callee.
                if "refused" in str(exc).lower():
                    outcome = CallOutcome(False, 503, f"connection refused to {call.service} at "
                                                      f"{address}",
                                          exception="ConnectionRefusedError", attempts=attempt)
                else:
                    outcome = CallOutcome(False, 503, f"connection reset by {call.service} at "
                                                      f"{address}",
                                          exception="ConnectionResetError", attempts=attempt)
                if attempt < CONNECT_ATTEMPTS:
                    time.sleep(0.05)
        attributes = {"http.request.method": call.method, "url.full": url,
                      "peer.service": call.service, "server.address": self.call_host,
                      "server.port": port}
        if status is not None:
            attributes["http.response.status_code"] = status
        events = []
        if not outcome.ok:
            attributes["error.type"] = outcome.exception or str(status)
            if outcome.exception:
                events.append(exception_event(outcome.exception, outcome.message))
        self._span(ctx, Span(self.name, f"{call.method} {call.service}{call.path}", "client",
                             ctx["trace_id"], span_id, ctx["span_id"], start_ns,
                             time.time_ns(), attributes,
                             error=None if outcome.ok else outcome.message, events=events))
        return outcome
