"""TempoClient against the recorded Tempo responses (real HTTP, fixture server)."""

from __future__ import annotations

import pytest

from reliability_studio.telemetry import TempoError
from reliability_studio.telemetry.tempo import TempoClient, error_spans, services_with_errors

from .conftest import FAST
from .fixture_server import Reply

TRACE_ID = "e8b6dff9f8d44b28f1b22bc3bd2f6768"  # base64 "6Lbf+fjUSyjxsivDvS9naA==" in the fixture


@pytest.fixture
def tempo(fixture_server):
    return TempoClient(fixture_server.url, **FAST)


def test_search_parses_string_and_number_counters(tempo, fixture_server):
    result = tempo.search("{ status = error }", start=1684778300, end=1684778400.5, limit=5)
    [trace] = result.traces
    assert trace.trace_id == "2f3e0cee77ae5dc9c17ade3689eb2e54"
    assert (trace.root_service, trace.root_name) == ("shop-backend", "update-billing")
    assert trace.start_ns == 1684778327699392724  # JSON string, exact
    assert trace.duration_ms == 557
    [span_set] = trace.span_sets
    assert span_set.matched == 1
    [span] = span_set.spans
    assert span.span_id == "563d623c76514f8e"
    assert span.duration_ns == 446979497
    assert span.attributes == {"status": "error"}
    assert result.metrics == {"totalBlocks": 13}
    [req] = fixture_server.matching("/api/search")
    assert req.query == {"q": ["{ status = error }"], "limit": ["5"],
                         "start": ["1684778300"], "end": ["1684778401"]}


def test_search_metrics_uint64_strings_become_ints(tempo, fixture_server):
    fixture_server.fixture("GET", "/api/search", "telemetry-api/tempo-search-tags.json")
    result = tempo.search("{}")
    assert [t.trace_id for t in result.traces] == ["d6e9329d67b6146a", "1b1ba462b409200d"]
    assert result.traces[0].span_sets == []
    assert result.metrics["inspectedTraces"] == 3100
    assert result.metrics["inspectedBytes"] == 3811736
    assert result.metrics["additionalMetrics"]["cacheHits"] == 124


def test_search_deprecated_singular_spanset(tempo, fixture_server):
    body = fixture_server.load("telemetry-api/tempo-search-traceql.json")
    trace = body["traces"][0]
    trace["spanSet"] = trace.pop("spanSets")[0]
    fixture_server.route("GET", "/api/search", Reply(body=body))
    [summary] = tempo.search("{ status = error }").traces
    assert summary.span_sets[0].spans[0].span_id == "563d623c76514f8e"


def _check_trace(trace):
    assert trace.trace_id == TRACE_ID
    assert [(s.span_id, s.parent_span_id) for s in trace.spans] == [
        ("9007fea484554ad7", None),
        ("2898383ecfa1a421", "9007fea484554ad7"),
        ("c1ae6cea39a8fc4b", "2898383ecfa1a421"),
    ]
    requester, server, db = trace.spans
    assert (requester.service, requester.kind) == ("mythical-requester", "SPAN_KIND_CLIENT")
    assert (server.service, server.kind, server.name) == ("mythical-server", "SPAN_KIND_SERVER", "POST /:endpoint")
    assert server.attributes["http.status_code"] == 500  # intValue is a JSON string
    assert requester.start_ns == 1658325672496201216
    assert requester.duration_ns == 1658325672511518720 - 1658325672496201216
    assert db.status_code == "STATUS_CODE_ERROR"
    assert 'violates not-null constraint' in db.status_message
    assert [s.span_id for s in error_spans(trace)] == [s.span_id for s in trace.spans]
    assert services_with_errors(trace) == ["mythical-requester", "mythical-server"]


def test_trace_v2(tempo, fixture_server):
    trace = tempo.trace(TRACE_ID.upper())
    _check_trace(trace)
    assert not trace.partial
    assert fixture_server.hits(f"/api/v2/traces/{TRACE_ID}") == 1
    assert tempo.api_version == "v2"


def test_trace_falls_back_to_v1_on_old_tempo(tempo, fixture_server):
    del fixture_server.routes[("GET", f"/api/v2/traces/{TRACE_ID}")]  # old Tempo: 404 page not found
    _check_trace(tempo.trace(TRACE_ID))
    assert tempo.api_version == "v1"
    _check_trace(tempo.trace(TRACE_ID))
    assert fixture_server.hits(f"/api/v2/traces/{TRACE_ID}") == 1  # probed only once
    assert fixture_server.hits(f"/api/traces/{TRACE_ID}") == 2


def test_trace_v2_partial_status(tempo, fixture_server):
    body = fixture_server.load("telemetry-api/tempo-trace-by-id-v2.json")
    body["status"] = "PARTIAL"
    fixture_server.route("GET", f"/api/v2/traces/{TRACE_ID}", Reply(body=body))
    assert tempo.trace(TRACE_ID).partial


def test_trace_not_found(fixture_server):
    tempo = TempoClient(fixture_server.url, api_version="v2", **FAST)
    fixture_server.route("GET", "/api/v2/traces/00000000000000000000000000000001",
                         Reply(404, "trace not found\n", "text/plain"))
    with pytest.raises(TempoError) as info:
        tempo.trace("00000000000000000000000000000001")
    assert info.value.kind == "not_found" and "trace not found" in str(info.value)
