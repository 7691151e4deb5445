"""LogsCollector against Loki 3.8 response shapes served over real HTTP (tests/telemetry/fixture_server.py).

Scenario (tests/fixtures/investigation/README.md): payment starts logging "connection pool exhausted
(max=50)" at 10:02:13 in the window; its baseline and checkout's lines are the usual healthz/charge chatter.
"""
from __future__ import annotations

import json
import time
from datetime import datetime, timedelta, timezone

import pytest

from investigation.collectors.base import Scope
from investigation.collectors.logs import LogsCollector
from investigation.models import EvidenceStatus
from investigation.rca import LogLine
from reliability_studio.telemetry import TelemetryError
from reliability_studio.telemetry.loki import LokiClient
from tests.telemetry.fixture_server import FixtureServer, Recorded, Reply, fixtures_root

FAST = {"timeout": 2.0, "retries": 0, "backoff_seconds": 0.01, "backoff_max_seconds": 0.02}
W0 = datetime(2026, 3, 14, 10, 0, tzinfo=timezone.utc)
W1 = datetime(2026, 3, 14, 10, 15, tzinfo=timezone.utc)
B0 = datetime(2026, 3, 14, 9, 30, tzinfo=timezone.utc)
TRACE_IDS = ["0000ab5e3c1d2e4f5a6b7c8d9e0f1a2b", "7f1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e",
             "c0ffee00c0ffee00c0ffee00c0ffee01"]
GRAFANA = "https://grafana.example.internal"


def scope(*services: str) -> Scope:
    return Scope(incident_id=1, services=list(services), roles={s: "affected" for s in services}, edges=[],
                 selectors={s: {"loki.selector": f'{{service="{s}"}}'} for s in services},
                 window_start=W0, window_end=W1, baseline_start=B0, baseline_end=W0,
                 detection_time=W0 + timedelta(minutes=5))


def later(seconds: float = 30.0) -> float:
    return time.monotonic() + seconds


def _ns(req: Recorded, key: str) -> int:
    return int(req.query[key][0])


def _volume_matrix(req: Recorded, per_minute: dict[str, int]) -> Reply:
    """`sum(count_over_time(...[1m]))` as Loki 3.8 answers a metric range query (matrix, whole-second ints)."""
    query = req.query["query"][0]
    service = next((s for s in per_minute if f'"{s}"' in query), None)
    start, end, step = _ns(req, "start") // 10**9, _ns(req, "end") // 10**9, int(req.query["step"][0])
    values = [[t, str(per_minute[service])] for t in range(start - start % step + step, end + 1, step)]
    result = [{"metric": {}, "values": values}] if service and per_minute[service] else []
    return Reply(200, json.dumps({"status": "success", "data": {"resultType": "matrix", "result": result,
                                                                "stats": {"summary": {"execTime": 0.001}}}}),
                 "application/json; charset=UTF-8")


def scenario_handler(server: FixtureServer, files: dict[str, str] | None = None, fail: set[str] = frozenset()):
    files = files or {"payment": "payment", "checkout": "checkout"}

    def handler(req: Recorded) -> Reply:
        query = req.query["query"][0]
        service = next((s for s in files if f'"{s}"' in query), None)
        if service in fail:
            return Reply(500, "rpc error: code = Unavailable desc = ingester payment-0 is unhealthy\n",
                         "text/plain; charset=utf-8")
        if not query.lstrip().startswith("{"):
            return _volume_matrix(req, {"payment": 6, "checkout": 2})
        assert req.headers.get("x-loki-response-encoding-flags") == "categorize-labels"
        which = "window" if _ns(req, "start") >= int(W0.timestamp()) * 10**9 else "baseline"
        if service is None or files[service] is None:
            return server.recorded("investigation/loki/query-range-empty.json")
        return server.recorded(f"investigation/loki/query-range-{files[service]}-{which}.json")

    return handler


@pytest.fixture
def server():
    srv = FixtureServer(fixtures_root())
    srv.start()
    yield srv
    srv.stop()


def collector(server: FixtureServer, **kwargs) -> LogsCollector:
    return LogsCollector(LokiClient(server.url, **FAST), grafana_url=GRAFANA, **kwargs)


def test_new_error_template_in_the_window_is_the_evidence(server):
    server.route("GET", "/loki/api/v1/query_range", scenario_handler(server))
    items, inputs = collector(server).collect(scope("payment", "checkout"), later())

    payment, checkout = items
    assert (payment.kind, payment.source, payment.service, payment.status) == ("logs", "loki", "payment", "ok")
    assert payment.query == '{service="payment"}'
    top = payment.snapshot["templates"][0]
    assert "connection pool exhausted (max=<*>)" in top["template"]
    assert top["new"] is True and top["count"] == 40 and top["baseline_count"] == 0
    assert top["first_seen"] == "2026-03-14T10:02:13.481000+00:00"
    assert payment.anomaly_start == datetime(2026, 3, 14, 10, 2, 13, 481000, tzinfo=timezone.utc)
    assert 1 <= len(top["examples"]) <= 3 and all("connection pool exhausted" in e for e in top["examples"])
    # trace ids come from Loki's structured metadata (categorize-labels), as 32 hex digits
    assert set(TRACE_IDS) <= set(top["trace_ids"])
    assert payment.finding == "new log template 'connection pool exhausted (max=<*>)' ×40 since 10:02:13"
    assert payment.score > 5
    assert payment.snapshot["lines"] == {"window": 85, "baseline": 90}
    assert payment.snapshot["truncated"] == {"window": False, "baseline": False}
    assert payment.snapshot["volume"]["query"] == 'sum(count_over_time({service="payment"}[1m]))'
    assert payment.snapshot["volume"]["window"] == 6 * 15 and payment.snapshot["volume"]["baseline"] == 6 * 30
    assert payment.explore_url.startswith(GRAFANA + "/explore?") and "loki" in payment.explore_url

    # checkout's window looks like its baseline: nothing new, score 0
    assert checkout.status == "ok" and checkout.score == 0.0 and checkout.snapshot["templates"] == []
    assert checkout.finding.startswith("no new or rising log templates")

    # the ranking gets both services' lines (window and baseline), as rca.LogLine
    assert inputs.logs and all(isinstance(line, LogLine) for line in inputs.logs)
    by_service = {s: [x for x in inputs.logs if x.service == s] for s in ("payment", "checkout")}
    assert len(by_service["payment"]) == 175 and len(by_service["checkout"]) == 90
    assert any("connection pool exhausted" in x.line for x in by_service["payment"])
    assert min(x.time for x in by_service["payment"]) < W0.timestamp() < max(x.time for x in by_service["payment"])

    # bounded fetches, exact LogQL, the window and the baseline asked separately
    log_queries = [r for r in server.matching("/loki/api/v1/query_range") if r.query["query"][0].startswith("{")]
    assert len(log_queries) == 4
    assert {r.query["limit"][0] for r in log_queries} == {"5000"}
    assert {r.query["direction"][0] for r in log_queries} == {"backward"}


def test_service_without_lines_is_no_data(server):
    server.route("GET", "/loki/api/v1/query_range",
                 scenario_handler(server, {"payment": "payment", "ghost": None}))
    items, _ = collector(server).collect(scope("payment", "ghost"), later())
    ghost = items[1]
    assert (ghost.service, ghost.status, ghost.score) == ("ghost", EvidenceStatus.NO_DATA, 0.0)
    assert ghost.finding == 'no log lines for {service="ghost"} in the window or the baseline'
    assert ghost.query == '{service="ghost"}'


def test_one_service_failing_is_unavailable_and_the_others_still_collect(server):
    server.route("GET", "/loki/api/v1/query_range", scenario_handler(server, fail={"checkout"}))
    items, inputs = collector(server).collect(scope("payment", "checkout"), later())
    payment, checkout = items
    assert payment.status == "ok" and payment.score > 5
    assert checkout.status == EvidenceStatus.UNAVAILABLE and checkout.query == '{service="checkout"}'
    assert "ingester payment-0 is unhealthy" in checkout.finding and "HTTP 500" in checkout.finding
    assert {x.service for x in inputs.logs} == {"payment"}


def test_loki_down_raises(server):
    server.route("GET", "/loki/api/v1/query_range", Reply(close=True))
    with pytest.raises(TelemetryError) as err:
        collector(server).collect(scope("payment", "checkout"), later())
    assert err.value.source == "loki"


def test_deadline_passed_queries_nothing(server):
    server.route("GET", "/loki/api/v1/query_range", scenario_handler(server))
    items, inputs = collector(server).collect(scope("payment", "checkout"), time.monotonic() - 1)
    assert [i.status for i in items] == [EvidenceStatus.TIMED_OUT] * 2
    assert server.hits("/loki/api/v1/query_range") == 0 and inputs.logs == []


def test_configured_follows_loki_url(settings):
    settings.LOKI_URL = ""
    assert LogsCollector().configured() is False
    settings.LOKI_URL = "http://loki:3100"
    assert LogsCollector().configured() is True


def test_a_burst_of_100k_lines_stays_within_the_snapshot_bound(server):
    """A proxy that ignores `limit` serves 100,000 lines of 60 different new templates: the collector
    keeps `limit` lines, ≤ 20 templates × ≤ 3 examples, lines cut at 500 characters."""
    t0 = int(W0.timestamp()) * 10**9
    long_tail = "x" * 900
    values = [[str(t0 + i * 9_000_000), f"failure kind{i % 60} " + "step " * (i % 60)
               + f"order={i} {long_tail if i % 7 == 0 else ''}".rstrip()] for i in range(100_000)]
    values.reverse()  # newest first, as Loki sends with direction=backward
    burst = json.dumps({"status": "success", "data": {
        "resultType": "streams", "encodingFlags": ["categorize-labels"],
        "result": [{"stream": {"service": "payment", "service_name": "payment", "level": "error"},
                    "values": [[ts, line, {}] for ts, line in values]}],
        "stats": {"summary": {"totalEntriesReturned": 100_000}}}})

    def handler(req: Recorded) -> Reply:
        query = req.query["query"][0]
        if not query.startswith("{"):
            return _volume_matrix(req, {"payment": 100_000 // 15})
        if _ns(req, "start") >= t0:
            return Reply(200, burst, "application/json; charset=UTF-8")
        return server.recorded("investigation/loki/query-range-payment-baseline.json")

    server.route("GET", "/loki/api/v1/query_range", handler)
    started = time.monotonic()
    [item], inputs = collector(server).collect(scope("payment"), later(60))
    assert time.monotonic() - started < 30
    snap = item.snapshot
    assert snap["lines"]["window"] == 5000 and snap["truncated"]["window"] is True
    assert snap["covered_from"]["window"] is not None and snap["volume"]["window"] > 90_000
    assert 1 <= len(snap["templates"]) <= 20
    assert all(len(t["examples"]) <= 3 for t in snap["templates"])
    assert all(len(x) <= 500 for t in snap["templates"] for x in t["examples"] + [t["template"]])
    assert item.snapshot_bytes() < 120_000
    assert len(inputs.logs) <= 2000
    assert "newest 5000 lines scanned" in item.finding
