"""LokiClient against the recorded Loki responses (real HTTP, fixture server)."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from reliability_studio.telemetry import LokiError
from reliability_studio.telemetry.loki import LokiClient

from .conftest import FAST, TOKEN
from .fixture_server import Reply


@pytest.fixture
def loki(fixture_server):
    return LokiClient(fixture_server.url, token=TOKEN, tenant="team-a", **FAST)


def test_streams_keep_exact_nanosecond_timestamps(loki, fixture_server):
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


def test_labels_and_label_values(loki, fixture_server):
    assert loki.labels() == ["foo", "bar", "baz"]
    assert loki.label_values("job") == ["varlogs", "checkout"]


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
