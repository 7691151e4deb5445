"""TempoClient against the recorded Tempo responses (real HTTP, fixture server).

The fixture server answers like the live Tempo 3.1 captures by default; tests of
the documented (older) shapes script those files explicitly.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from reliability_studio.telemetry import TempoError
from reliability_studio.telemetry.tempo import (
    SEARCH_INGEST_DELAY_S,
    TempoClient,
    error_spans,
    normalize_span_id,
    normalize_trace_id,
    services_with_errors,
)

from .conftest import FAST
from .fixture_server import LIVE_TRACE_ID, Reply

SHORT_ID = "f5403db05ee854a5b881458e3fc1"  # how Tempo's search sends 0000f5403db0...

TRACE_ID = "e8b6dff9f8d44b28f1b22bc3bd2f6768"  # base64 "6Lbf+fjUSyjxsivDvS9naA==" in the fixture


@pytest.fixture
def tempo(fixture_server):
    return TempoClient(fixture_server.url, **FAST)


def test_search_parses_string_and_number_counters(tempo, fixture_server):
    fixture_server.fixture("GET", "/api/search", "telemetry-api/tempo-search-traceql.json")  # documented shape
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
    # The documented example has 64-bit ids; they come back padded to 32 hex digits.
    assert [t.trace_id for t in result.traces] == ["0000000000000000d6e9329d67b6146a",
                                                   "00000000000000001b1ba462b409200d"]
    assert result.traces[0].span_sets == []
    assert result.metrics["inspectedTraces"] == 3100
    assert result.metrics["inspectedBytes"] == 3811736
    assert result.metrics["additionalMetrics"]["cacheHits"] == 124


def test_search_deprecated_singular_spanset(tempo, fixture_server):
    fixture_server.fixture("GET", "/api/search", "telemetry-api/tempo-search-traceql.json")
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
    del fixture_server.routes[("GET", "/api/v2/traces/*")]  # old Tempo: 404 page not found
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


# -- live Tempo 3.1 shapes ------------------------------------------------------------


def test_live_search_ids_get_their_leading_zeros_back(tempo, fixture_server):
    result = tempo.search('{ resource.service.name = "payment" }', start=1796114500, end=1796114600)
    assert [t.trace_id for t in result.traces] == [
        "d2cdf9575c1973a411b5660fb78cf57a",
        LIVE_TRACE_ID,
        "0000" + SHORT_ID,  # Tempo sent 28 digits
    ]
    assert all(len(s.span_id) == 16 for t in result.traces for ss in t.span_sets for s in ss.spans)


def test_live_search_service_stats_and_sparse_spans(tempo, fixture_server):
    result = tempo.search("{ status = error }", start=1796114500, end=1796114600)
    [trace] = result.traces
    assert trace.service_stats == {
        "checkout": {"span_count": 2, "error_count": 0},
        "frontend": {"span_count": 2, "error_count": 0},
        "payment": {"span_count": 1, "error_count": 1},
    }
    assert trace.error_count == 1 and trace.services_with_errors == ["payment"]
    [span_set] = trace.span_sets  # spanSet and spanSets both present: counted once
    [span] = span_set.spans
    assert (span.span_id, span.name, span.duration_ns) == ("bd448cd3d8fee08e", None, 30_000_000)
    assert span.attributes == {"status": "error"}
    assert result.metrics == {"inspectedBytes": 15654, "completedJobs": 3, "totalJobs": 3}


def test_live_search_matched_span_without_attributes(tempo, fixture_server):
    # The answer to a legacy ?tags= search: no span sets, no serviceStats.
    fixture_server.route("GET", "/api/search",
                         fixture_server.recorded("telemetry-api/live-loki-3.8-tempo-3.1/tempo-live-search-tags-legacy.json"))
    result = tempo.search("{}")
    assert [t.trace_id for t in result.traces][-1] == "0000" + SHORT_ID
    assert all(t.span_sets == [] and t.service_stats == {} for t in result.traces)
    assert result.metrics["inspectedTraces"] == 3 and result.metrics["inspectedBytes"] == 14485
    # A matched span that was neither filtered nor selected has no attributes (and no name).
    body = fixture_server.load_recorded("telemetry-api/live-loki-3.8-tempo-3.1/tempo-live-search-error.json")
    del body["traces"][0]["spanSets"][0]["spans"][0]["attributes"]
    fixture_server.route("GET", "/api/search", Reply(body=body))
    [span] = tempo.search("{ status = error }").traces[0].span_sets[0].spans
    assert span.attributes == {} and span.name is None


def test_live_invalid_traceql_is_bad_data(tempo, fixture_server):
    with pytest.raises(TempoError) as info:
        tempo.search("{ status = error ")
    assert (info.value.kind, info.value.status) == ("bad_data", 400)
    assert "invalid TraceQL query" in str(info.value)


def test_live_trace_by_id_matches_search(tempo, fixture_server):
    [summary] = tempo.search("{ status = error }", start=1796114500, end=1796114600).traces
    trace = tempo.trace(summary.trace_id)
    assert trace.trace_id == summary.trace_id == LIVE_TRACE_ID
    assert [s.service for s in trace.spans] == ["frontend", "frontend", "checkout", "checkout", "payment"]
    [error] = error_spans(trace)
    assert (error.span_id, error.status_message) == ("bd448cd3d8fee08e", "card declined")
    assert services_with_errors(trace) == summary.services_with_errors == ["payment"]


def test_live_v2_missing_trace_is_not_found(tempo, fixture_server):
    # Tempo >= 2.6: 200 {"trace":{},"metrics":{}} for an unknown id; not an empty trace.
    with pytest.raises(TempoError) as info:
        tempo.trace("00000000000000000000000000000001")
    assert info.value.kind == "not_found"
    assert fixture_server.hits("/api/v2/traces/00000000000000000000000000000001") == 1
    assert fixture_server.hits("/api/traces/00000000000000000000000000000001") == 0  # v2 exists: no fallback
    assert tempo.api_version == "v2"


def test_live_v1_missing_trace_is_not_found(fixture_server):
    tempo = TempoClient(fixture_server.url, api_version="v1", **FAST)
    with pytest.raises(TempoError) as info:
        tempo.trace("00000000000000000000000000000001")
    assert (info.value.kind, info.value.status) == ("not_found", 404)


def test_trace_accepts_short_hex_and_base64_ids(tempo, fixture_server):
    assert tempo.trace("otWrqaUPew7AMis1eQG8GQ==").trace_id == LIVE_TRACE_ID  # jsonpb base64
    assert tempo.trace(LIVE_TRACE_ID.upper()).trace_id == LIVE_TRACE_ID
    with pytest.raises(TempoError) as info:
        tempo.trace(SHORT_ID)  # as search returned it; not in the captures
    assert info.value.kind == "not_found"
    paths = [r.path for r in fixture_server.matching()]
    assert paths == [f"/api/v2/traces/{LIVE_TRACE_ID}"] * 2 + [f"/api/v2/traces/0000{SHORT_ID}"]
    with pytest.raises(TempoError) as info:
        tempo.trace("not-a-trace-id!")
    assert info.value.kind == "bad_data"
    assert fixture_server.hits() == 3  # refused before sending


def test_normalize_ids():
    full = "0000" + SHORT_ID
    assert normalize_trace_id(SHORT_ID) == normalize_trace_id(full.upper()) == full
    assert normalize_trace_id("AAD1QD2wXuhUpbiBRY4/wQ==") == full  # base64 keeps the zero bytes
    assert normalize_trace_id("otWrqaUPew7AMis1eQG8GQ==") == LIVE_TRACE_ID
    assert normalize_trace_id("otWrqaUPew7AMis1eQG8GQ") == LIVE_TRACE_ID  # unpadded base64
    assert normalize_span_id("WYeCAz/rSHo=") == "598782033feb487a"
    assert normalize_span_id("51fb324bfb15d6") == "0051fb324bfb15d6"
    for bad in ("", "xyz!", "0" * 33):
        with pytest.raises(ValueError):
            normalize_trace_id(bad)


def test_search_is_conclusive_only_after_the_ingest_delay(tempo):
    now = 1796114900.0
    assert SEARCH_INGEST_DELAY_S == TempoClient.SEARCH_INGEST_DELAY_S >= 30
    assert not tempo.search_is_conclusive(now - 10, now)
    assert not tempo.search_is_conclusive(now - SEARCH_INGEST_DELAY_S + 1, now)
    assert tempo.search_is_conclusive(now - SEARCH_INGEST_DELAY_S, now)
    assert not tempo.search_is_conclusive(None, now)  # searched up to now
    wall = datetime.now(timezone.utc)
    assert tempo.search_is_conclusive(wall - timedelta(minutes=5))
    assert not tempo.search_is_conclusive(wall)
