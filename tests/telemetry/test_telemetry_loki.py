"""LokiClient against the recorded Loki responses (real HTTP, fixture server).

The fixture server answers like the live Loki 3.8 captures by default; tests of
the documented (older) shapes script those files explicitly.
"""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from reliability_studio.telemetry import LokiError
from reliability_studio.telemetry.loki import LokiClient, is_log_query

from .conftest import FAST, TOKEN
from .fixture_server import LIVE, Reply

CHECKOUT_TRACE = "2f3e0cee77ae5dc9c17ade3689eb2e54"


@pytest.fixture
def loki(fixture_server):
    return LokiClient(fixture_server.url, token=TOKEN, tenant="team-a", **FAST)


def test_streams_keep_exact_nanosecond_timestamps(loki, fixture_server):
    # The documented plain shape (no encodingFlags: a Loki that ignores the header).
    fixture_server.fixture("GET", "/loki/api/v1/query_range", "telemetry-api/loki-query-range-streams.json")
    result = loki.query_range('{job="varlogs"}', 1569266490, 1569266500, limit=50, direction="forward")
    assert result.result_type == "streams"
    [stream] = result.streams
    assert stream.labels == {"filename": "/var/log/myproject.log", "job": "varlogs", "level": "info"}
    assert [(e.timestamp_ns, e.line) for e in stream.entries] == [
        (1569266497240578000, "foo"),
        (1569266492548155000, "bar"),
    ]
    assert isinstance(stream.entries[0].timestamp_ns, int)
    assert stream.entries[0].datetime == datetime(2019, 9, 23, 19, 21, 37, 240578, tzinfo=timezone.utc)
    assert [e.line for e in result.entries] == ["bar", "foo"]  # oldest first
    assert "querier" in result.stats  # kept raw, never interpreted

    [req] = fixture_server.matching("/loki/api/v1/query_range")
    assert req.query["start"] == ["1569266490000000000"]
    assert req.query["end"] == ["1569266500000000000"]
    assert req.query["limit"] == ["50"] and req.query["direction"] == ["forward"]
    assert req.headers["x-scope-orgid"] == "team-a"
    assert result.encoding_flags == []
    assert stream.entries[0].metadata == {}


def test_metric_query_returns_float_second_series(loki, fixture_server):
    fixture_server.fixture("GET", "/loki/api/v1/query_range", "telemetry-api/loki-query-range-matrix.json")
    result = loki.query_range('sum by (level) (rate({job="varlogs"}[1m]))', 1588889000, 1588889300, step=60)
    assert result.result_type == "matrix"
    assert [s.labels for s in result.series] == [{"level": "info"}, {"level": "warn"}]
    assert result.series[0].timestamps[0] == 1588889221.0
    assert result.series[0].values == [137.95, 467.115, 658.8516666666667]
    assert fixture_server.matching("/loki/api/v1/query_range")[0].query["step"] == ["60"]


def test_unknown_stats_keys_are_ignored(loki, fixture_server):
    body = fixture_server.load("telemetry-api/loki-query-range-streams.json")
    body["data"]["stats"]["futureSection"] = {"newCounter": "123", "nested": {"x": [1, 2]}}
    fixture_server.route("GET", "/loki/api/v1/query_range", Reply(body=body))
    result = loki.query_range('{job="varlogs"}', 0, 1)
    assert len(result.entries) == 2


def test_live_matrix_timestamps_are_json_integers(loki, fixture_server):
    # Loki 3.8 sends whole-second matrix timestamps as JSON integers (1796114580, not 1796114580.0).
    result = loki.query_range('sum by (level) (count_over_time({service="payment"}[1m]))',
                              1796114500, 1796114800, step=60)
    assert result.result_type == "matrix"
    assert [s.labels for s in result.series] == [{"level": "error"}, {"level": "info"}]
    assert result.series[0].timestamps == [1796114580.0, 1796114640.0, 1796114700.0, 1796114760.0]
    assert all(isinstance(ts, float) for ts in result.series[0].timestamps)
    assert result.series[0].values == [1.0, 4.0, 4.0, 3.0]


def test_live_vector_timestamps_have_milliseconds(loki, fixture_server):
    result = loki.query('sum(count_over_time({service="payment"}[5m]))', time=1796114735.681)
    [sample] = result.samples
    assert (sample.labels, sample.timestamp, sample.value) == ({}, 1796114735.681, 32.0)
    [req] = fixture_server.matching("/loki/api/v1/query")
    assert req.headers["x-loki-response-encoding-flags"] == "categorize-labels"


def test_structured_metadata_is_categorized_when_requested(loki, fixture_server):
    # Loki 3.8 only separates structured metadata when asked to; without the header
    # it lands in the stream labels and entry.metadata stays empty.
    result = loki.query_range('{service="checkout"}', 1796114700, 1796114730)
    [req] = fixture_server.matching("/loki/api/v1/query_range")
    assert req.headers["x-loki-response-encoding-flags"] == "categorize-labels"
    assert result.encoding_flags == ["categorize-labels"]
    index = {"run": "707078", "service": "checkout", "service_name": "checkout"}
    assert [s.labels for s in result.streams] == [{**index, "level": "error"}, {**index, "level": "warn"}]
    failed, slow_ns, slow_float = sorted(result.entries, key=lambda e: -e.timestamp_ns)
    assert failed.line == "run=707078 checkout failed"
    assert failed.structured_metadata == {"detected_level": "error", "trace_id": CHECKOUT_TRACE}
    assert failed.metadata == failed.structured_metadata and failed.parsed == {}
    assert failed.trace_id == CHECKOUT_TRACE
    assert (failed.level, failed.service) == ("error", "checkout")
    assert slow_ns.metadata == {"detected_level": "warn", "pod": "checkout-1", "trace_id": CHECKOUT_TRACE}
    assert slow_ns.timestamp_ns == 1796114715681708077
    assert slow_float.metadata == {"detected_level": "warn"} and slow_float.trace_id is None
    assert failed.all_labels == {**index, "level": "error", "detected_level": "error", "trace_id": CHECKOUT_TRACE}


def test_plain_shape_metadata_merged_into_labels(loki, fixture_server):
    # A Loki that ignores the header (or a proxy that strips it): the default capture.
    fixture_server.route("GET", "/loki/api/v1/query_range",
                         fixture_server.recorded(f"{LIVE}/loki-live-query-range-structured-metadata-default.json"))
    result = loki.query_range('{service="checkout"}', 1796114700, 1796114730)
    assert result.encoding_flags == [] and len(result.streams) == 3  # metadata splits streams
    failed = max(result.entries, key=lambda e: e.timestamp_ns)
    assert failed.labels["trace_id"] == CHECKOUT_TRACE and failed.metadata == {}
    assert failed.trace_id == CHECKOUT_TRACE  # found in the labels instead
    assert failed.level == "error"  # the detected_level label


def test_detected_level_and_service_name(loki, fixture_server):
    result = loki.query_range('{service="payment"}', 1796114700, 1796114731)
    [stream] = result.streams
    assert stream.labels == {"level": "error", "run": "707078", "service": "payment", "service_name": "payment"}
    first = stream.entries[0]
    assert first.structured_metadata == {"detected_level": "error"}
    assert (first.level, first.service) == ("error", "payment")
    assert first.line == 'level=error run=707078 msg="payment provider timeout" order=1000 ünïcode "quoted"'
    assert [e.timestamp_ns for e in stream.entries] == [
        1796114730681707201, 1796114715681707202, 1796114700681707203]


def test_instant_log_query_is_refused_before_sending(loki, fixture_server):
    with pytest.raises(LokiError) as info:
        loki.query('{service="checkout"} |= "failed"')
    assert info.value.kind == "bad_data"
    assert "query_range" in str(info.value)
    assert fixture_server.hits("/loki/api/v1/query") == 0


def test_loki_400_is_a_bad_data_error(loki, fixture_server):
    with pytest.raises(LokiError) as info:
        loki.query('{service="checkout"')  # unterminated: left to Loki, which refuses it
    assert (info.value.kind, info.value.status) == ("bad_data", 400)
    assert "syntax error: unexpected $end" in str(info.value)
    # Loki's own refusal of an instant log query (live capture) maps the same way.
    fixture_server.route("GET", "/loki/api/v1/query", fixture_server.recorded(f"{LIVE}/loki-live-instant-log.json"))
    with pytest.raises(LokiError) as info:
        loki.query("vector(1)")
    assert info.value.kind == "bad_data" and "please change your query to a range query" in str(info.value)


@pytest.mark.parametrize("query, expected", [
    ('{service="checkout"}', True),
    ('  {app="shop"} |= "error" | json | line_format "{{.msg}}"', True),
    ('# errors only\n{app="shop"} |= "error"', True),
    ('sum by (service) (count_over_time({app="shop"} |= "error" [1m]))', False),
    ('rate({app="shop"}[5m])', False),
    ("(count_over_time({a=\"b\"}[1m]))", False),
    ("vector(1)", False),
    ("{", False),  # not a selector: let Loki answer with its parse error
])
def test_is_log_query(query, expected):
    assert is_log_query(query) is expected


def test_structured_metadata_in_third_element(loki, fixture_server):
    body = {"status": "success", "data": {"resultType": "streams", "result": [{
        "stream": {"service_name": "checkout"},
        "values": [["1773480690512000000", "timeout", {"structuredMetadata": {"trace_id": "2f3e"},
                                                        "parsed": {"level": "error"}}]],
    }], "stats": {}}}
    fixture_server.route("GET", "/loki/api/v1/query_range", Reply(body=body))
    [entry] = loki.query_range('{service_name="checkout"}', 0, 1).entries
    assert entry.timestamp_ns == 1773480690512000000
    assert entry.metadata == {"trace_id": "2f3e", "level": "error"}
    assert entry.structured_metadata == {"trace_id": "2f3e"} and entry.parsed == {"level": "error"}
    assert entry.level == "error"  # a parsed "level" field (no detected_level)


def test_labels_and_label_values(loki, fixture_server):
    assert loki.labels() == ["level", "run", "service", "service_name"]  # live: Loki adds service_name
    assert loki.label_values("service") == ["checkout", "payment"]
    fixture_server.fixture("GET", "/loki/api/v1/labels", "telemetry-api/loki-labels.json")
    assert loki.labels() == ["foo", "bar", "baz"]  # the documented example


def test_push_sends_string_timestamps_and_is_not_retried(loki, fixture_server):
    request = fixture_server.load("telemetry-api/loki-push-request.json")
    loki.push(request["streams"])
    sent = fixture_server.matching("/loki/api/v1/push")[0].json()
    assert sent == request  # already wire-format: sent unchanged

    fixture_server.route("POST", "/loki/api/v1/push", Reply(503, "ingester unavailable\n", "text/plain"))
    when = datetime(2026, 3, 14, 9, 31, 30, 512000, tzinfo=timezone.utc)
    with pytest.raises(LokiError) as info:
        loki.push([({"service_name": "checkout"}, [(when, "msg", {"pod": "p-1"}), (1773480690512000001, "x")])])
    assert "ingester unavailable" in str(info.value)
    pushes = fixture_server.matching("/loki/api/v1/push")
    assert len(pushes) == 2  # 1 success + 1 failed attempt: writes are never retried
    assert pushes[1].json()["streams"][0]["values"] == [
        ["1773480690512000000", "msg", {"pod": "p-1"}],
        ["1773480690512000001", "x"],
    ]


def test_not_configured():
    client = LokiClient("")
    assert not client.configured
    with pytest.raises(LokiError) as info:
        client.labels()
    assert info.value.kind == "not_configured"
    assert "LOKI_URL" in str(info.value)
