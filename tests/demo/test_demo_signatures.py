"""Each injected fault leaves its own signature in the logs and traces an investigation reads.

The workload runs as a real process; its stdout (JSON log lines) is captured and a small HTTP
server in the test process stands in for Loki and Tempo, recording the pushed bodies (the same
wire format the real backends accept, see test_demo_export.py). Every assertion joins logs and
spans by trace id, as the investigation does.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.support.shop import start_shop

pytestmark = pytest.mark.slow

HEX32 = re.compile(r"[0-9a-f]{32}")
HEX16 = re.compile(r"[0-9a-f]{16}")
POOL_EXHAUSTED = re.compile(r"connection pool exhausted \(max=20, waiting=(\d+)\) after (\d+)ms")
LOCK_TIMEOUT = re.compile(r"lock wait timeout exceeded on table orders \(waited (\d+)ms\)")
SLOW_REQUEST = re.compile(r"request took (\d+)ms, over the 200ms slow threshold \((\w+) (\S+)\)")
SLOW_QUERY = re.compile(r"slow query on table orders took (\d+)ms \(threshold 200ms\)")
SERVER, CLIENT, STATUS_ERROR = 2, 3, 2


class _Sink(ThreadingHTTPServer):
    """Records Loki pushes and OTLP/HTTP trace exports."""

    daemon_threads = True

    def __init__(self):
        self.pushes: list[tuple[str, dict]] = []
        self.lock = threading.Lock()
        super().__init__(("127.0.0.1", 0), _SinkHandler)
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def spans(self) -> list[dict]:
        """Every exported span, flattened, with ``service`` from its resource."""
        with self.lock:
            bodies = [body for path, body in self.pushes if path == "/v1/traces"]
        spans = []
        for body in bodies:
            for resource in body["resourceSpans"]:
                attrs = {a["key"]: a["value"]["stringValue"] for a in resource["resource"]["attributes"]}
                for scope in resource["scopeSpans"]:
                    for span in scope["spans"]:
                        spans.append({**span, "service": attrs["service.name"]})
        return spans

    def loki_values(self) -> list[tuple[dict, list]]:
        with self.lock:
            bodies = [body for path, body in self.pushes if path == "/loki/api/v1/push"]
        return [(stream["stream"], value) for body in bodies for stream in body["streams"]
                for value in stream["values"]]


class _SinkHandler(BaseHTTPRequestHandler):
    def do_POST(self):  # noqa: N802 - http.server naming
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        with self.server.lock:
            self.server.pushes.append((self.path, body))
        self.send_response(204)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def sink():
    server = _Sink()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def shop(tmp_path_factory, sink):
    # TEMPO_URL is the product's query API; the demo must push to DEMO_TEMPO_OTLP_URL instead.
    running = start_shop(tmp_path_factory.mktemp("signatures"), rps=60, env={
        "DEMO_LOKI_URL": sink.url, "DEMO_TEMPO_OTLP_URL": sink.url,
        "LOKI_URL": "http://127.0.0.1:1", "TEMPO_URL": "http://127.0.0.1:1"})
    yield running
    running.stop()


@pytest.fixture
def window(shop):
    """Log offset and wall-clock start of one test; faults are cleared afterwards."""
    yield shop.log_offset(), time.time_ns()
    shop.control("DELETE", "/faults")
    time.sleep(1.0)  # requests in flight at recovery (up to ~0.5 s of injected waits) finish here


def _lines(shop, offset, service=None, level=None):
    return [line for line in shop.logs(offset)
            if (service is None or line.get("service") == service)
            and (level is None or line.get("level") == level)]


def _matching(shop, offset, service, pattern):
    return [line for line in _lines(shop, offset, service) if pattern.fullmatch(line["msg"])]


def _spans_with(sink, wait_for, span_ids, what):
    """The pushed spans, once every span in `span_ids` has been exported (once a second, later on a
    busy machine: wait for them rather than for a fixed time)."""
    wanted = set(span_ids)
    wait_for(lambda: wanted <= {span["spanId"] for span in sink.spans()}, timeout=20,
             message=f"the spans of {what} exported")
    return sink.spans()


def _exception_events(span):
    return [{a["key"]: a["value"]["stringValue"] for a in event["attributes"]}
            for event in span.get("events", []) if event["name"] == "exception"]


def _duration_ms(span):
    return (int(span["endTimeUnixNano"]) - int(span["startTimeUnixNano"])) / 1e6


def test_payment_error_fault_signature(shop, sink, window, wait_for):
    offset, _ = window
    shop.control("POST", "/faults/payment", json={"kind": "error", "error_rate": 0.5})
    wait_for(lambda: len(_matching(shop, offset, "payment", POOL_EXHAUSTED)) >= 5, timeout=20,
             message="payment logging pool exhaustion")
    spans = _spans_with(sink, wait_for, [l["span_id"] for l in _matching(shop, offset, "payment", POOL_EXHAUSTED)[:5]],
                        "payment's failing requests")
    by_id = {span["spanId"]: span for span in spans}
    lines = _lines(shop, offset)

    for line in _matching(shop, offset, "payment", POOL_EXHAUSTED)[:5]:
        assert line["level"] == "error" and line["status"] == 500
        assert line["error_type"] == "PoolTimeoutError"
        assert HEX32.fullmatch(line["trace_id"]) and HEX16.fullmatch(line["span_id"])
        # The log line's span is payment's server span: status error with the same message,
        # an exception event, and as long as the wait the message reports.
        span = by_id[line["span_id"]]
        assert span["traceId"] == line["trace_id"]
        assert (span["service"], span["kind"], span["name"]) == ("payment", SERVER, "POST /charge")
        assert span["status"] == {"code": STATUS_ERROR, "message": line["msg"]}
        assert _exception_events(span) == [{"exception.type": "PoolTimeoutError",
                                            "exception.message": line["msg"]}]
        waited = int(POOL_EXHAUSTED.fullmatch(line["msg"]).group(2))
        assert _duration_ms(span) >= waited
        # The caller's side of the same request: checkout logs the upstream failure ...
        same_trace = [other for other in lines if other.get("trace_id") == line["trace_id"]]
        assert {"service": "checkout", "level": "error",
                "msg": "upstream payment failed: 500 (POST /charge)", "upstream": "payment"} \
            .items() <= next(o for o in same_trace if o["service"] == "checkout"
                             and o["msg"].startswith("upstream")).items()
        # ... and the frontend the checkout's 502; payment's own message stays in payment.
        assert any(o["service"] == "frontend" and o["msg"] == "upstream checkout failed: 502 (POST /orders)"
                   for o in same_trace)
        assert not any(POOL_EXHAUSTED.search(o["msg"]) for o in same_trace if o["service"] != "payment")
        # The failing charge never reached the database.
        assert not any(s["service"] == "database" for s in spans if s["traceId"] == line["trace_id"])
        # Payment's server span hangs off checkout's client span, which failed with the 500.
        client = by_id[span["parentSpanId"]]
        assert (client["service"], client["kind"]) == ("checkout", CLIENT)
        assert client["status"]["message"] == "upstream payment failed: 500 (POST /charge)"


def test_database_error_fault_signature(shop, sink, window, wait_for):
    offset, _ = window
    shop.control("POST", "/faults/database", json={"kind": "error", "error_rate": 0.5})

    def both_callers():
        failed = {line["service"] for line in _lines(shop, offset, level="error")
                  if line["msg"] == "upstream database failed: 500 (POST /query)"}
        return {"payment", "checkout"} <= failed

    wait_for(both_callers, timeout=20, message="payment and checkout logging the database's 500")
    timeouts = _matching(shop, offset, "database", LOCK_TIMEOUT)
    assert timeouts
    by_id = {span["spanId"]: span for span in _spans_with(sink, wait_for, [l["span_id"] for l in timeouts[:5]],
                                                          "the database's lock timeouts")}
    for line in timeouts[:5]:
        assert line["level"] == "error" and line["error_type"] == "LockWaitTimeoutError"
        span = by_id[line["span_id"]]
        assert span["status"] == {"code": STATUS_ERROR, "message": line["msg"]}
        assert _exception_events(span)[0]["exception.type"] == "LockWaitTimeoutError"
        assert _duration_ms(span) >= int(LOCK_TIMEOUT.fullmatch(line["msg"]).group(1))
    # Only the database says "lock wait timeout"; nobody else claims a pool problem.
    for line in _lines(shop, offset):
        if line["service"] != "database":
            assert "lock wait timeout" not in line["msg"]
        assert not POOL_EXHAUSTED.search(line["msg"])


def test_crash_signature_refused_at_the_caller_and_silence_from_the_crashed(shop, sink, window, wait_for):
    offset, _ = window
    port = shop.port("payment")
    refused = f"connection refused to payment at 127.0.0.1:{port}"
    shop.control("POST", "/faults/payment", json={"kind": "crash"})
    crashed_at = time.time_ns()
    wait_for(lambda: len([l for l in _lines(shop, offset, "checkout") if l["msg"] == refused]) >= 5,
             timeout=15, message="checkout logging connection refused")
    refused_lines = [l for l in _lines(shop, offset, "checkout") if l["msg"] == refused][:5]
    spans = _spans_with(sink, wait_for, [l["span_id"] for l in refused_lines], "checkout's refused calls")
    by_id = {span["spanId"]: span for span in spans}
    for line in refused_lines:
        assert line["level"] == "error" and line["status"] == 503 and line["upstream"] == "payment"
        assert line["attempts"] == 2  # a refused connection is retried once
        client = next(s for s in spans if s["traceId"] == line["trace_id"] and s["kind"] == CLIENT
                      and s["service"] == "checkout" and s["parentSpanId"] == line["span_id"]
                      and "payment" in s["name"])
        assert client["status"] == {"code": STATUS_ERROR, "message": refused}
        assert _exception_events(client)[0]["exception.type"] == "ConnectionRefusedError"
        assert by_id[line["span_id"]]["status"]["message"] == refused
    # A crashed process writes nothing: no payment line and no payment span after the crash
    # (a little slack for a request finishing while the crash was being applied).
    grace = crashed_at + 250_000_000
    late_spans = [s for s in spans if s["service"] == "payment" and int(s["endTimeUnixNano"]) > grace]
    assert late_spans == []
    late_lines = [l for l in _lines(shop, offset, "payment")
                  if _ts_ns(l["ts"]) > grace]
    assert late_lines == []


def _ts_ns(ts: str) -> int:
    return int(dt.datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp() * 1e9)


def test_latency_fault_signature(shop, sink, window, wait_for):
    offset, started = window
    shop.control("POST", "/faults/checkout", json={"kind": "latency", "add_ms": 800})
    wait_for(lambda: len(_matching(shop, offset, "checkout", SLOW_REQUEST)) >= 5, timeout=20,
             message="checkout logging slow requests")
    shop.control("DELETE", "/faults/checkout")
    slow = _matching(shop, offset, "checkout", SLOW_REQUEST)[:5]
    by_id = {span["spanId"]: span for span in _spans_with(sink, wait_for, [l["span_id"] for l in slow],
                                                          "checkout's slow requests")}
    for line in slow:
        took, method, route = SLOW_REQUEST.fullmatch(line["msg"]).groups()
        assert line["level"] == "warn" and int(took) >= 800
        assert (method, route) == (line["method"], line["route"])
        span = by_id[line["span_id"]]
        assert span["service"] == "checkout" and _duration_ms(span) >= 800
    # Only the slowed service says it is slow: its callers wait but their own work is quick.
    slow_elsewhere = [l for l in _lines(shop, offset, level="warn")
                      if l["service"] != "checkout" and "took" in l["msg"]]
    assert slow_elsewhere == []


def test_database_latency_logs_slow_queries(shop, sink, window, wait_for):
    offset, _ = window
    shop.control("POST", "/faults/database", json={"kind": "latency", "add_ms": 300})
    wait_for(lambda: len(_matching(shop, offset, "database", SLOW_QUERY)) >= 5, timeout=20,
             message="database logging slow queries")
    shop.control("DELETE", "/faults/database")
    slow = _matching(shop, offset, "database", SLOW_QUERY)[:5]
    by_id = {span["spanId"]: span for span in _spans_with(sink, wait_for, [l["span_id"] for l in slow],
                                                          "the database's slow queries")}
    for line in slow:
        assert line["level"] == "warn"
        assert _duration_ms(by_id[line["span_id"]]) >= 300


def test_every_request_line_joins_a_span_by_w3c_trace_id(shop, sink, window, wait_for):
    offset, _ = window
    wait_for(lambda: len([l for l in _lines(shop, offset) if "route" in l]) > 50, timeout=20,
             message="more than 50 request lines")
    request_lines = [l for l in _lines(shop, offset) if "route" in l]
    # Every one of these lines must get its span exported (once a second; wait for them, bounded).
    _spans_with(sink, wait_for, [l["span_id"] for l in request_lines], "those requests")
    spans = {(s["traceId"], s["spanId"]): s for s in sink.spans()}
    for line in request_lines:
        assert HEX32.fullmatch(line["trace_id"]) and HEX16.fullmatch(line["span_id"])
        assert (line["trace_id"], line["span_id"]) in spans, line
        span = spans[(line["trace_id"], line["span_id"])]
        assert span["service"] == line["service"] and span["kind"] == SERVER
    # What Loki receives carries the same ids as structured metadata.
    with_ids = [(labels, value) for labels, value in sink.loki_values() if len(value) == 3]
    assert with_ids
    for labels, (_, line, metadata) in with_ids[:200]:
        record = json.loads(line)
        assert metadata == {"trace_id": record["trace_id"], "span_id": record["span_id"]}
        assert labels == {"service": record["service"], "app": "shop"}
