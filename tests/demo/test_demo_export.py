"""Logs pushed to a Loki-compatible endpoint and spans to an OTLP/HTTP endpoint.

A small real HTTP server in the test process records what the workload pushes
(Loki and Tempo binaries are not available here); the assertions pin the wire
format both backends accept.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

pytestmark = pytest.mark.slow


class _Recorder(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, fail: bool = False):
        self.pushes: list[tuple[str, dict]] = []
        self.fail = fail
        self.lock = threading.Lock()
        super().__init__(("127.0.0.1", 0), _RecordingHandler)
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def bodies(self, path: str) -> list[dict]:
        with self.lock:
            return [body for p, body in self.pushes if p == path]


class _RecordingHandler(BaseHTTPRequestHandler):
    def do_POST(self):  # noqa: N802 - http.server naming
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        with self.server.lock:
            self.server.pushes.append((self.path, body))
        status = 500 if self.server.fail else 204
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def recorder():
    server = _Recorder()
    yield server
    server.shutdown()
    server.server_close()


def test_logs_pushed_to_loki_in_push_format(recorder, shop_factory, wait_for):
    # The legacy variables still work when the DEMO_* ones are unset.
    shop = shop_factory(rps=20, env={"LOKI_URL": recorder.url, "TEMPO_URL": recorder.url})
    shop.control("POST", "/faults/payment", json={"kind": "error", "error_rate": 1})
    pushes = wait_for(lambda: len(recorder.bodies("/loki/api/v1/push")) >= 3 and
                      recorder.bodies("/loki/api/v1/push"), timeout=15, message="3 Loki pushes")
    streams = [stream for body in pushes for stream in body["streams"]]
    assert {s["stream"]["service"] for s in streams} >= {"frontend", "checkout", "payment"}
    for stream in streams:
        assert set(stream["stream"]) == {"service", "app"} and stream["stream"]["app"] == "shop"
        for ts, line, *metadata in stream["values"]:
            assert isinstance(ts, str) and ts.isdigit() and len(ts) == 19  # nanoseconds
            record = json.loads(line)
            assert record["service"] == stream["stream"]["service"]
            # Structured metadata (Loki 3.x): the request's ids, exactly as in the line.
            if "trace_id" in record:
                assert metadata == [{"trace_id": record["trace_id"], "span_id": record["span_id"]}]
            else:
                assert metadata == []
    payment_lines = [json.loads(line)["msg"] for s in streams
                     if s["stream"]["service"] == "payment" for _, line, *_ in s["values"]]
    assert any(m.startswith("connection pool exhausted (max=20, waiting=") for m in payment_lines)


def test_spans_pushed_as_otlp_json(recorder, shop_factory, wait_for):
    shop_factory(rps=20, env={"DEMO_TEMPO_OTLP_URL": recorder.url, "TEMPO_URL": "http://127.0.0.1:1"})
    bodies = wait_for(lambda: len(recorder.bodies("/v1/traces")) >= 3 and
                      recorder.bodies("/v1/traces"), timeout=15, message="3 OTLP pushes")
    spans = {}
    for body in bodies:
        for resource in body["resourceSpans"]:
            attrs = {a["key"]: a["value"]["stringValue"] for a in resource["resource"]["attributes"]}
            for scope in resource["scopeSpans"]:
                for span in scope["spans"]:
                    assert len(span["traceId"]) == 32 and len(span["spanId"]) == 16
                    int(span["traceId"], 16), int(span["spanId"], 16)
                    assert int(span["endTimeUnixNano"]) >= int(span["startTimeUnixNano"])
                    assert span["kind"] in (2, 3)
                    spans[span["spanId"]] = {**span, "service": attrs["service.name"]}
    # Follow a database server span up its parents to the frontend: one trace, real hops.
    chains = []
    for span in spans.values():
        if span["service"] == "database" and span["kind"] == 2:
            chain, current = [], span
            while current:
                chain.append((current["service"], current["kind"]))
                assert current["traceId"] == span["traceId"]
                current = spans.get(current.get("parentSpanId"))
            chains.append(chain)
    assert any(chain[-1] == ("frontend", 2) and ("payment", 2) in chain and len(chain) == 7
               for chain in chains)


def test_backend_failures_do_not_hurt_the_workload(shop_factory, wait_for):
    failing = _Recorder(fail=True)
    try:
        shop = shop_factory(rps=20, env={"LOKI_URL": failing.url,
                                         "TEMPO_URL": "http://127.0.0.1:1"})
        wait_for(lambda: len(failing.bodies("/loki/api/v1/push")) >= 2, timeout=10,
                 message="pushes to the failing Loki")
        assert shop.process.poll() is None
        assert shop.control("GET", "/healthz").json()["status"] == "ok"
        assert shop.requests_by_code("frontend", "/").get("200", 0) > 0
        err = shop.log_path.with_suffix(".err").read_text()
        assert err.count("Loki push returned 500") == 1  # reported once, not every second
        assert err.count("Tempo push failed") == 1
    finally:
        failing.shutdown()
        failing.server_close()
