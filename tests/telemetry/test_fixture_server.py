"""The fixture server itself answers like the live Loki 3.8 / Tempo 3.1 captures (raw HTTP, no client)."""

from __future__ import annotations

import json

import requests

from .fixture_server import LIVE, LIVE_TRACE_ID, categorize_streams, fixtures_root


def _capture(name: str):
    return json.loads((fixtures_root() / LIVE / name).read_text())


def test_fixtures_live_inside_the_repository():
    root = fixtures_root()
    assert root.parent.name == "tests" and (root / "README.md").is_file()
    for sub in ("telemetry-api", "alert-payloads", "kubernetes", "grafana", LIVE):
        assert (root / sub / "README.md").is_file(), sub


def test_loki_categorizes_only_when_the_header_is_sent(fixture_server):
    url = f"{fixture_server.url}/loki/api/v1/query_range"
    params = {"query": '{service="checkout"}', "start": "1", "end": "2"}
    plain = requests.get(url, params=params, timeout=5).json()
    categorized = requests.get(url, params=params, timeout=5,
                               headers={"X-Loki-Response-Encoding-Flags": "categorize-labels"}).json()
    assert "encodingFlags" not in plain["data"]
    assert all(len(value) == 2 for s in plain["data"]["result"] for value in s["values"])
    assert categorized["data"]["encodingFlags"] == ["categorize-labels"]
    assert all(len(value) == 3 for s in categorized["data"]["result"] for value in s["values"])


def test_categorize_transform_reproduces_the_live_capture():
    # The payment answer is synthesized with this transform; check it on the pair Loki gave us.
    default = _capture("loki-live-query-range-structured-metadata-default.json")
    expected = _capture("loki-live-query-range-categorize-labels.json")
    got = categorize_streams(default)
    assert got["data"]["encodingFlags"] == expected["data"]["encodingFlags"]
    assert got["data"]["result"] == expected["data"]["result"]


def test_loki_instant_log_query_is_a_400(fixture_server):
    resp = requests.get(f"{fixture_server.url}/loki/api/v1/query",
                        params={"query": '{service="checkout"}'}, timeout=5)
    assert resp.status_code == 400 and resp.headers["content-type"].startswith("text/plain")
    assert "not supported as an instant query" in resp.text


def test_tempo_v2_unknown_trace_is_200_empty_and_v1_is_404(fixture_server):
    missing = "0123456789abcdef0123456789abcdef"
    v2 = requests.get(f"{fixture_server.url}/api/v2/traces/{missing}", timeout=5)
    assert (v2.status_code, v2.json()) == (200, {"trace": {}, "metrics": {}})
    v1 = requests.get(f"{fixture_server.url}/api/traces/{missing}", timeout=5)
    assert (v1.status_code, v1.text, v1.headers.get("content-type")) == (404, "", None)
    short = LIVE_TRACE_ID.lstrip("0")
    assert requests.get(f"{fixture_server.url}/api/v2/traces/{short}", timeout=5).json()["trace"]["resourceSpans"]


def test_tempo_search_ids_lack_leading_zeros(fixture_server):
    body = requests.get(f"{fixture_server.url}/api/search", params={"q": "{ span.amount > 1 }"}, timeout=5).json()
    assert "f5403db05ee854a5b881458e3fc1" in [t["traceID"] for t in body["traces"]]
    assert all("serviceStats" in t and "spanSet" in t and "spanSets" in t for t in body["traces"])
    assert isinstance(body["metrics"]["inspectedBytes"], str)
