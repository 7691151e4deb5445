"""Wire format of the demo's exports and the fault signatures' templates (no processes)."""

from __future__ import annotations

import io
import json
import random
import re

from demo.telemetry import Span, Telemetry, encode_loki, encode_otlp, exception_event
from demo.topology import BY_NAME, SERVICES


def test_push_urls_come_from_demo_variables_with_legacy_fallback():
    assert (Telemetry.from_env({}).loki_url, Telemetry.from_env({}).tempo_url) == ("", "")
    legacy = Telemetry.from_env({"LOKI_URL": "http://l:3100/", "TEMPO_URL": "http://t:4318"})
    assert (legacy.loki_url, legacy.tempo_url) == ("http://l:3100", "http://t:4318")
    own = Telemetry.from_env({"DEMO_LOKI_URL": "http://dl:3100", "LOKI_URL": "http://l:3100",
                              "DEMO_TEMPO_OTLP_URL": "http://t:4318", "TEMPO_URL": "http://t:3200"})
    assert (own.loki_url, own.tempo_url) == ("http://dl:3100", "http://t:4318")
    # Set but empty disables the export even when the product's variable is set.
    off = Telemetry.from_env({"DEMO_TEMPO_OTLP_URL": "", "TEMPO_URL": "http://t:3200",
                              "DEMO_LOKI_URL": "", "LOKI_URL": "http://l:3100"})
    assert (off.loki_url, off.tempo_url) == ("", "")


def test_loki_entries_carry_trace_ids_as_structured_metadata():
    out = io.StringIO()
    telemetry = Telemetry(loki_url="http://loki", stream=out)
    telemetry.log("payment", "error", "boom", trace_id="a" * 32, span_id="b" * 16, status=500)
    telemetry.log("control", "info", "shop started")
    body = encode_loki(list(telemetry._logs))
    values = {s["stream"]["service"]: s["values"] for s in body["streams"]}
    (ts, line, metadata), = values["payment"]
    assert metadata == {"trace_id": "a" * 32, "span_id": "b" * 16}
    assert json.loads(line)["trace_id"] == "a" * 32
    assert len(values["control"][0]) == 2  # no ids, no metadata element
    assert out.getvalue().count("\n") == 2  # stdout keeps every line


def test_otlp_error_span_has_status_message_and_exception_event():
    span = Span("payment", "POST /charge", "server", "c" * 32, "d" * 16, None, 1, 2,
                {"http.response.status_code": 500}, error="pool gone",
                events=[exception_event("PoolTimeoutError", "pool gone", 2)])
    encoded = encode_otlp([span])["resourceSpans"][0]["scopeSpans"][0]["spans"][0]
    assert encoded["status"] == {"code": 2, "message": "pool gone"}
    assert encoded["events"] == [{"timeUnixNano": "2", "name": "exception", "attributes": [
        {"key": "exception.type", "value": {"stringValue": "PoolTimeoutError"}},
        {"key": "exception.message", "value": {"stringValue": "pool gone"}}]}]
    ok = encode_otlp([Span("catalog", "GET /", "server", "c" * 32, "e" * 16, None, 1, 2)])
    assert "events" not in ok["resourceSpans"][0]["scopeSpans"][0]["spans"][0]


def test_failure_templates_render_their_signatures():
    rng = random.Random(7)
    payment, wait = BY_NAME["payment"].failure.render(rng, max=BY_NAME["payment"].pool_size)
    match = re.fullmatch(r"connection pool exhausted \(max=20, waiting=(\d+)\) after (\d+)ms", payment)
    assert match and float(match.group(2)) == wait > 0
    database, wait = BY_NAME["database"].failure.render(rng, max=20)
    match = re.fullmatch(r"lock wait timeout exceeded on table orders \(waited (\d+)ms\)", database)
    assert match and float(match.group(1)) == wait
    # Every service has its own message and exception type.
    rendered = {s.name: s.failure.render(rng, max=s.pool_size)[0] for s in SERVICES}
    assert len({re.sub(r"\d+", "N", m) for m in rendered.values()}) == len(SERVICES)
    assert len({s.failure.exception for s in SERVICES}) == len(SERVICES)
