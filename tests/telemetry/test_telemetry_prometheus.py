"""PrometheusClient: recorded responses (fixture server) and a real Prometheus server."""

from __future__ import annotations

import math
import time
from datetime import datetime, timezone

import pytest

from reliability_studio.telemetry import PrometheusError
from reliability_studio.telemetry.prometheus import PrometheusClient

from .conftest import FAST
from .fixture_server import Reply

# -- recorded responses --------------------------------------------------------


@pytest.fixture
def prom(fixture_server):
    return PrometheusClient(fixture_server.url, **FAST)


def test_vector_is_posted_form_encoded(prom, fixture_server):
    result = prom.query('up{job=~"prometheus|node"}', time=datetime(2015, 7, 1, 20, 10, 51, 781000, tzinfo=timezone.utc))
    assert result.result_type == "vector"
    assert [(s.labels["job"], s.timestamp, s.value) for s in result.samples] == [
        ("prometheus", 1435781451.781, 1.0),
        ("node", 1435781451.781, 0.0),
    ]
    [req] = fixture_server.matching("/api/v1/query", "POST")
    assert req.headers["content-type"] == "application/x-www-form-urlencoded"
    assert req.form() == {"query": ['up{job=~"prometheus|node"}'], "time": ["1435781451.781"]}


def test_matrix(prom, fixture_server):
    result = prom.query_range("up", 1435781430.781, 1435781460.781, step=15)
    assert result.result_type == "matrix"
    node = result.series[1]
    assert node.labels == {"__name__": "up", "job": "node", "instance": "localhost:9091"}
    assert node.timestamps == [1435781430.781, 1435781445.781, 1435781460.781]
    assert node.values == [0.0, 0.0, 1.0]
    assert fixture_server.matching("/api/v1/query_range")[0].form()["step"] == ["15"]


def test_range_answers_come_uncompressed_unless_compression_is_asked_for(prom, fixture_server):
    # Gzipping ~100 KB range answers was half of an anomaly rule's cost (bench/detect_cycle.py).
    prom.query_range("up", 1435781430.781, 1435781460.781, step=15)
    prom.query("up")
    compressed = PrometheusClient(fixture_server.url, compress_range=True, **FAST)
    compressed.query_range("up", 1435781430.781, 1435781460.781, step=15)
    first, second = fixture_server.matching("/api/v1/query_range")
    assert first.headers["accept-encoding"] == "identity"
    assert "gzip" in second.headers["accept-encoding"]
    assert "gzip" in fixture_server.matching("/api/v1/query")[0].headers["accept-encoding"]  # small answers


def test_compression_comes_from_the_setting(settings):
    settings.PROMETHEUS_COMPRESSION = True
    assert PrometheusClient.from_settings()._range_headers is None
    settings.PROMETHEUS_COMPRESSION = False
    assert PrometheusClient.from_settings()._range_headers == {"Accept-Encoding": "identity"}


def test_scalar_and_infos(prom, fixture_server):
    fixture_server.fixture("POST", "/api/v1/query", "telemetry-api/prometheus-query-scalar.json")
    result = prom.query("scalar(up)")
    assert (result.result_type, result.scalar.timestamp, result.scalar.value) == ("scalar", 1435781451.781, 0.999)

    fixture_server.fixture("POST", "/api/v1/query", "telemetry-api/prometheus-query-vector-with-infos.json")
    result = prom.query("rate(http_requests[5m])")
    assert result.samples[0].value == 0.04213
    assert result.infos and "might not be a counter" in result.infos[0]
    assert result.warnings == []


def test_special_float_values(prom, fixture_server):
    body = {"status": "success", "warnings": ["w1"], "data": {"resultType": "vector", "result": [
        {"metric": {"v": "nan"}, "value": [1, "NaN"]},
        {"metric": {"v": "inf"}, "value": [1, "+Inf"]},
        {"metric": {"v": "-inf"}, "value": [1, "-Inf"]},
    ]}}
    fixture_server.route("POST", "/api/v1/query", Reply(body=body))
    result = prom.query("x")
    values = [s.value for s in result.samples]
    assert math.isnan(values[0]) and values[1] == math.inf and values[2] == -math.inf
    assert result.warnings == ["w1"]


def test_error_envelope_maps_error_type(prom, fixture_server):
    fixture_server.fixture("POST", "/api/v1/query", "telemetry-api/prometheus-error-bad-data.json", status=400)
    with pytest.raises(PrometheusError) as info:
        prom.query("sum(rate(x[5m])")
    assert (info.value.kind, info.value.status) == ("bad_data", 400)
    assert "parse error: unclosed left parenthesis" in info.value.message


def test_execution_error_422(prom, fixture_server):
    fixture_server.route("POST", "/api/v1/query", Reply(422, {
        "status": "error", "errorType": "execution", "error": "query processing would load too many samples"}))
    with pytest.raises(PrometheusError) as info:
        prom.query("x")
    assert info.value.kind == "execution" and fixture_server.hits("/api/v1/query") == 1


def test_path_prefix_for_mimir(fixture_server):
    fixture_server.fixture("POST", "/prometheus/api/v1/query", "telemetry-api/prometheus-query-vector.json")
    client = PrometheusClient(fixture_server.url, path_prefix="/prometheus", tenant="tenant-1", **FAST)
    assert len(client.query("up").samples) == 2
    [req] = fixture_server.matching("/prometheus/api/v1/query")
    assert req.headers["x-scope-orgid"] == "tenant-1"


def test_basic_auth_from_url_is_not_kept_in_url(fixture_server):
    url = fixture_server.url.replace("http://", "http://alice:hunter2pw@")
    client = PrometheusClient(url, **FAST)
    client.query("up")
    assert "hunter2pw" not in repr(client) and client.base_url == fixture_server.url
    assert fixture_server.matching("/api/v1/query")[0].headers["authorization"].startswith("Basic ")


def test_validate_falls_back_when_format_query_is_missing(prom, fixture_server):
    # The fixture server has no /api/v1/format_query (like Mimir): 404 -> instant query at t=0.
    assert prom.validate("up") is None
    assert prom.validate("rate(up[5m])") is None
    assert fixture_server.hits("/api/v1/format_query") == 1  # remembered
    assert [float(r.form()["time"][0]) for r in fixture_server.matching("/api/v1/query")] == [0, 0]
    fixture_server.fixture("POST", "/api/v1/query", "telemetry-api/prometheus-error-bad-data.json", status=400)
    with pytest.raises(PrometheusError, match="unclosed left parenthesis"):
        prom.validate("sum(rate(x[5m])")


# -- a real Prometheus -----------------------------------------------------------


@pytest.fixture(scope="module")
def live(real_prometheus):
    client = PrometheusClient(real_prometheus.url, timeout=5)
    yield client
    client.close()


@pytest.mark.slow
def test_live_instant_query(live):
    result = live.query('up{job="prometheus"}')
    [sample] = result.samples
    assert sample.value == 1.0
    assert sample.labels["job"] == "prometheus"
    assert abs(sample.timestamp - time.time()) < 60
    build = live.query("prometheus_build_info").samples[0]
    assert build.labels["version"]
    assert live.query("1 + 1").scalar.value == 2.0
    assert math.isinf(live.query("1/0").scalar.value)


@pytest.mark.slow
def test_live_range_query(live):
    end = time.time()
    result = live.query_range('up{job="prometheus"}', end - 30, end, step="1s")
    [series] = result.series
    assert series.values and set(series.values) == {1.0}
    assert series.timestamps == sorted(series.timestamps)
    assert len(series.timestamps) == len(series.values)


@pytest.mark.slow
def test_live_series_and_labels(live):
    series = live.series(['up{job="prometheus"}'], start=time.time() - 300)
    assert series and series[0]["__name__"] == "up"
    assert "prometheus" in live.label_values("job")
    assert "up" in live.label_values("__name__", match='{job="prometheus"}')
    assert "job" in live.label_names()


@pytest.mark.slow
def test_live_validate(live):
    assert live.validate('sum by (job) (rate(prometheus_http_requests_total[1m]))') is None
    with pytest.raises(PrometheusError) as info:
        live.validate("sum(rate(prometheus_http_requests_total[1m])")
    assert info.value.kind == "bad_data" and info.value.status == 400
    assert "unclosed left parenthesis" in str(info.value)
    with pytest.raises(PrometheusError, match="parse error"):
        live.validate("up{job=}")


@pytest.mark.slow
def test_live_bad_query_error(live):
    with pytest.raises(PrometheusError) as info:
        live.query_range("up", 100, 50, step=1)  # end before start
    assert info.value.kind == "bad_data"
    assert "end timestamp must not be before start time" in str(info.value)
