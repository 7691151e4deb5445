"""TracesCollector against Tempo 3.1 response shapes served over real HTTP (tests/telemetry/fixture_server.py).

Scenario (tests/fixtures/investigation/README.md): three error traces frontend → checkout → payment in
the window; every span on the path fails, and the deepest failing span — payment's `POST /charge`,
"connection pool exhausted (max=50)", whose child `cache.get` succeeds — is where the errors start.
Search answers ids without their leading zeros (`0000ab5e…` comes back as `ab5e…`), trace-by-id is v2.
"""
from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone

import pytest

from investigation.collectors.base import Scope
from investigation.collectors.traces import MAX_SPANS, NOT_CONCLUSIVE, TracesCollector, analyse, error_origin
from investigation.models import EvidenceStatus
from investigation.rca import TraceSummary
from reliability_studio.telemetry import TelemetryError
from reliability_studio.telemetry.tempo import Span, TempoClient, Trace
from tests.telemetry.fixture_server import LIVE, FixtureServer, Recorded, Reply, fixtures_root, tempo_trace_id

FAST = {"timeout": 2.0, "retries": 0, "backoff_seconds": 0.01, "backoff_max_seconds": 0.02}
W0 = datetime(2026, 3, 14, 10, 0, tzinfo=timezone.utc)
W1 = datetime(2026, 3, 14, 10, 15, tzinfo=timezone.utc)
TRACE_IDS = ["0000ab5e3c1d2e4f5a6b7c8d9e0f1a2b", "7f1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e",
             "c0ffee00c0ffee00c0ffee00c0ffee01"]
GRAFANA = "https://grafana.example.internal"
PAYMENT_ERRORS = '{ resource.service.name = "payment" && status = error }'


def scope(*services: str, end: datetime = W1) -> Scope:
    return Scope(incident_id=1, services=list(services), roles={s: "affected" for s in services}, edges=[],
                 selectors={s: {"tempo.service": s} for s in services},
                 window_start=W0, window_end=end, baseline_start=W0 - timedelta(minutes=30), baseline_end=W0,
                 detection_time=W0 + timedelta(minutes=5))


def later(seconds: float = 30.0) -> float:
    return time.monotonic() + seconds


@pytest.fixture
def server():
    srv = FixtureServer(fixtures_root())
    srv.start()
    yield srv
    srv.stop()


def install(server: FixtureServer, *, errors: dict[str, str] | None = None, fail: set[str] = frozenset()):
    """Tempo search by TraceQL, and v2 trace-by-id for the scenario's traces (others: 200 empty trace)."""
    errors = {"payment": "payment", "checkout": "checkout"} if errors is None else errors

    def search(req: Recorded) -> Reply:
        q = req.query["q"][0]
        service = next((s for s in ("payment", "checkout", "frontend") if f'"{s}"' in q), None)
        if service in fail:
            return Reply(500, "error querying ingesters in Querier.SearchRecent: rpc error: code = Unavailable\n",
                         "text/plain; charset=utf-8")
        if "status = error" in q and errors.get(service):
            return server.recorded(f"investigation/tempo/search-error-{errors[service]}.json")
        return server.recorded("investigation/tempo/search-empty.json")

    def by_id(req: Recorded) -> Reply:
        trace_id = tempo_trace_id(req.path.rsplit("/", 1)[-1])
        if trace_id in TRACE_IDS:
            return server.recorded(f"investigation/tempo/trace-v2-{trace_id}.json")
        return server.recorded(f"{LIVE}/tempo-live-trace-v2-missing.txt")

    server.route("GET", "/api/search", search)
    server.route("GET", "/api/v2/traces/*", by_id)


def collector(server: FixtureServer, now: float | None = None, **kwargs) -> TracesCollector:
    now = (W1 + timedelta(minutes=2)).timestamp() if now is None else now
    return TracesCollector(TempoClient(server.url, api_version="v2", **FAST), grafana_url=GRAFANA,
                           now=lambda: now, **kwargs)


def test_error_traces_originate_in_payment(server):
    install(server)
    items, inputs = collector(server).collect(scope("checkout", "payment"), later())
    checkout, payment = items

    assert (payment.kind, payment.source, payment.status) == ("traces", "tempo", "ok")
    assert payment.query == PAYMENT_ERRORS
    assert payment.finding == ("3 error traces; errors originate in payment "
                               "(POST /charge: connection pool exhausted (max=50))")
    assert payment.snapshot["origin_counts"] == {"payment": 3}
    assert payment.snapshot["conclusive"] is True
    assert payment.snapshot["slow"]["query"] == '{ resource.service.name = "payment" && duration > 1s }'
    assert payment.snapshot["slow"]["count"] == 0
    assert payment.anomaly_start == datetime(2026, 3, 14, 10, 2, 13, 481000, tzinfo=timezone.utc)
    traces = {t["trace_id"]: t for t in payment.snapshot["traces"]}
    assert set(traces) == set(TRACE_IDS)  # the leading zeros are back
    first = traces[TRACE_IDS[0]]
    assert (first["root_service"], first["root_name"], first["span_count"]) == ("frontend", "GET /checkout", 6)
    assert first["origin"]["service"] == "payment" and first["origin"]["name"] == "POST /charge"
    [origin] = [s for s in first["spans"] if s["origin"]]
    assert (origin["service"], origin["error"], origin["status_message"]) == (
        "payment", True, "connection pool exhausted (max=50)")
    assert {s["name"] for s in first["spans"] if s["error"]} == {
        "GET /checkout", "POST checkout", "POST /checkout", "POST payment", "POST /charge"}
    assert first["duration_ms"] == 5120.0 and first["start"] == "2026-03-14T10:02:13.481000+00:00"
    assert payment.explore_url.startswith(GRAFANA + "/explore?") and "tempo" in payment.explore_url

    # checkout fails too, but only because payment does: same origin, lower score
    assert checkout.finding.startswith("3 error traces; errors originate in payment")
    assert checkout.snapshot["origin_counts"] == {"payment": 3}
    assert payment.score > checkout.score > 0

    # each trace fetched once (by 32-hex id) although both services found it
    fetched = [r.path.rsplit("/", 1)[-1] for r in server.matching(method="GET") if r.path.startswith("/api/v2/traces/")]
    assert sorted(fetched) == sorted(TRACE_IDS)
    searches = [r for r in server.matching("/api/search")]
    assert {r.query["limit"][0] for r in searches} == {"20"}
    assert {r.query["start"][0] for r in searches} == {str(int(W0.timestamp()))}

    assert len(inputs.traces) == 3 and all(isinstance(t, TraceSummary) for t in inputs.traces)
    summary = next(t for t in inputs.traces if t.trace_id == TRACE_IDS[0])
    assert summary.origin_service == "payment"
    assert set(summary.services) == {"frontend", "checkout", "payment"}
    assert set(summary.error_services) == {"frontend", "checkout", "payment"}
    assert summary.time == pytest.approx(1773482533.481) and summary.duration_ms == 5120.0


def test_empty_search_right_after_the_window_is_not_conclusive(server):
    install(server, errors={})
    recent = collector(server, now=W1.timestamp() + 5)
    [item], inputs = recent.collect(scope("payment"), later())
    assert item.status == EvidenceStatus.NO_DATA and item.score == 0.0
    assert item.finding == NOT_CONCLUSIVE
    assert item.snapshot["conclusive"] is False and inputs.traces == []

    [item], _ = collector(server, now=W1.timestamp() + 120).collect(scope("payment"), later())
    assert item.status == EvidenceStatus.OK and item.score == 0.0
    assert item.finding == "no error traces and none slower than 1s in the window"


def test_one_service_failing_is_unavailable_and_the_others_still_collect(server):
    install(server, fail={"checkout"})
    checkout, payment = collector(server).collect(scope("checkout", "payment"), later())[0]
    assert checkout.status == EvidenceStatus.UNAVAILABLE and checkout.query.startswith(
        '{ resource.service.name = "checkout"')
    assert "HTTP 500" in checkout.finding and "SearchRecent" in checkout.finding
    assert payment.status == "ok" and payment.snapshot["origin_counts"] == {"payment": 3}


def test_tempo_down_raises(server):
    server.route("GET", "/api/search", Reply(close=True))
    with pytest.raises(TelemetryError) as err:
        collector(server).collect(scope("checkout", "payment"), later())
    assert err.value.source == "tempo"


def test_a_trace_missing_by_id_is_noted_not_fatal(server):
    install(server)
    server.route("GET", "/api/v2/traces/*", server.recorded(f"{LIVE}/tempo-live-trace-v2-missing.txt"))
    [item], inputs = collector(server).collect(scope("payment"), later())
    assert item.status == "ok" and item.finding == "3 error traces"
    assert len(item.snapshot["fetch_errors"]) == 3 and "not found" in item.snapshot["fetch_errors"][0]["error"]
    assert inputs.traces == []


def test_configured_follows_tempo_url(settings):
    settings.TEMPO_URL = ""
    assert TracesCollector().configured() is False
    settings.TEMPO_URL = "http://tempo:3200"
    assert TracesCollector().configured() is True


# -- the origin of errors, on hand-built span trees ---------------------------------------------

def span(span_id: str, parent: str | None, service: str, error: bool = False, start: int = 0,
         message: str = "") -> Span:
    return Span(trace_id="0" * 32, span_id=span_id, parent_span_id=parent, service=service, name=f"op {span_id}",
                kind="SPAN_KIND_SERVER", start_ns=start, end_ns=start + 1_000_000,
                status_code="STATUS_CODE_ERROR" if error else "STATUS_CODE_UNSET", status_message=message,
                attributes={})


def test_origin_is_the_deepest_failing_span_whose_children_succeed():
    spans = [
        span("a", None, "frontend", error=True),
        span("b", "a", "checkout", error=True),
        span("c", "b", "payment", error=True, message="pool exhausted"),
        span("d", "c", "payment"),  # payment's own child succeeds
        span("e", "a", "inventory", error=True),  # a shallower failing leaf on another branch
        span("f", "b", "cache"),
    ]
    assert error_origin(spans).span_id == "c"
    # if payment's child failed too, the child is the origin
    spans[3] = span("d", "c", "postgres", error=True)
    assert error_origin(spans).service == "postgres"


def test_origin_edge_cases():
    assert error_origin([span("a", None, "frontend"), span("b", "a", "checkout")]) is None
    # a parent that is not in the trace counts as a root; ties go to the earliest span
    assert error_origin([span("x", "missing", "payment", error=True, start=5),
                         span("y", "missing", "checkout", error=True, start=1)]).span_id == "y"
    # a failing parent with a failing child: the child, even if it started later
    assert error_origin([span("p", None, "checkout", error=True), span("q", "p", "payment", error=True, start=9)]
                        ).span_id == "q"
    # a cycle does not hang
    assert error_origin([span("m", "n", "a", error=True), span("n", "m", "b")]).span_id == "m"


def test_a_huge_trace_is_cut_to_max_spans_keeping_the_origin_path():
    spans = [span("root", None, "frontend", error=True)]
    spans += [span(f"ok{i}", "root", "checkout", start=i) for i in range(300)]
    spans += [span("mid", "ok299", "payment", error=True, start=400),
              span("leaf", "mid", "payment", error=True, start=401, message="boom")]
    doc = analyse(Trace("0" * 32, spans), "error")
    assert len(doc["spans"]) == MAX_SPANS and doc["spans_truncated"] is True and doc["span_count"] == 303
    kept = {s["id"] for s in doc["spans"]}
    assert {"root", "ok299", "mid", "leaf"} <= kept
    assert doc["origin"] == {"service": "payment", "name": "op leaf", "span_id": "leaf", "status_message": "boom"}


def test_new_log_template_and_error_trace_origin_both_in_the_evidence(server):
    """The whole scenario on one server: the logs evidence names the new template and the trace ids in its
    lines; the traces evidence finds those very traces and their origin in payment."""
    from investigation.collectors.logs import LogsCollector
    from reliability_studio.telemetry.loki import LokiClient
    from tests.investigation.test_collectors_logs import scenario_handler

    install(server)
    server.route("GET", "/loki/api/v1/query_range", scenario_handler(server))
    s = scope("checkout", "payment")
    s.selectors = {name: {**sel, "loki.selector": f'{{service="{name}"}}'} for name, sel in s.selectors.items()}
    log_items, log_inputs = LogsCollector(LokiClient(server.url, **FAST)).collect(s, later())
    trace_items, trace_inputs = collector(server).collect(s, later())
    evidence = log_items + trace_items

    top = max(evidence, key=lambda i: (i.kind == "logs", i.score))
    assert (top.kind, top.service) == ("logs", "payment") and "connection pool exhausted" in top.finding
    traces = next(i for i in evidence if i.kind == "traces" and i.service == "payment")
    assert "errors originate in payment" in traces.finding
    logged = set(top.snapshot["templates"][0]["trace_ids"])
    assert logged & {t["trace_id"] for t in traces.snapshot["traces"]} == set(TRACE_IDS)
    assert {t.origin_service for t in trace_inputs.traces} == {"payment"}
    assert any("connection pool exhausted" in line.line for line in log_inputs.logs)
