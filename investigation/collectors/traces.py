"""Traces evidence: the error and slow traces of the services in scope, and where their errors start.

Per service in scope (its catalog `tempo.service`), two TraceQL searches over the window (limit 20):

    { resource.service.name = "payment" && status = error }
    { resource.service.name = "payment" && duration > 1s }

then a few of the traces found (≤ 5 per service, ≤ 15 per run; a trace found for two services is
fetched once) are read by id to find where the errors *originate*: the deepest span with error
status none of whose child spans is an error (`error_origin`). A service whose spans are the origin
of most error traces is the likely culprit; its callers fail only because it does.

Tempo's search lags ingestion by ~30 s (trace-by-id does not): an empty search over a window that
ended less than `TempoClient.SEARCH_INGEST_DELAY_S` ago is not proof of anything, so the item says
"not conclusive yet (traces become searchable ~30 s after ingestion)" with status NO_DATA and score 0.

Snapshot (bounded: ≤ 5 traces × ≤ 50 spans):

    {"service_name", "window": {"start", "end"}, "limit", "conclusive": bool,
     "errors": {"query", "count", "limit_reached"}, "slow": {"query", "threshold", "count", "limit_reached"}
                                                         | {"query", "threshold", "error"|"skipped"},
     "traces": [{"trace_id", "matched": "error"|"slow", "root_service", "root_name", "start",
                 "duration_ms", "span_count", "spans_truncated", "error_services",
                 "origin": {"service", "name", "span_id", "status_message"} | None,
                 "spans": [{"id", "parent", "service", "name", "duration_ms", "error", "status_message",
                            "origin"}]}],
     "origin_counts": {service: n}, "fetch_errors": [{"trace_id", "error"}]}

`query` is the error TraceQL (the slow one is in the snapshot). Score, comparable between services:
`min(5, 1 + errors/4)` when there are error traces, `+ 5 × the share of fetched error traces that
originate in this service`, `+ min(2, 0.5 + slow/10)` when there are slow traces.

Failures: one service's search failing (`TelemetryError`) gives an UNAVAILABLE item for it (TIMED_OUT
for a timeout) with the error as its finding, query kept; the others still collect. When every
service's error search fails, Tempo as a whole is down and the first error is raised (the runner
records the source as unavailable). A trace that cannot be fetched is listed under `fetch_errors`;
the search result stands. No query starts after the deadline (`time.monotonic()`); the Tempo client
has no per-request timeout, so a request in flight may end up to `TELEMETRY_TIMEOUT_SECONDS` late.
"""
from __future__ import annotations

import time
from collections import Counter, defaultdict
from datetime import datetime, timezone
from typing import Any, Callable, ClassVar, Iterable

from django.conf import settings

from reliability_studio import grafana_links
from reliability_studio.telemetry.errors import KIND_TIMEOUT, TelemetryError
from reliability_studio.telemetry.tempo import STATUS_ERROR, Span, TempoClient, Trace

from ..models import EvidenceKind, EvidenceStatus
from .base import CaseInputs, EvidenceItem, Scope

SEARCH_LIMIT = 20
FETCH_PER_SERVICE = 5
MAX_FETCH = 15
MAX_SPANS = 50
MAX_TEXT = 300
SLOW_THRESHOLD = "1s"
NOT_CONCLUSIVE = "not conclusive yet (traces become searchable ~30 s after ingestion)"


def _cut(text: str, limit: int = MAX_TEXT) -> str:
    text = text or ""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _iso_ns(ns: int | None) -> str | None:
    if not ns:
        return None
    return datetime.fromtimestamp(ns / 1e9, tz=timezone.utc).isoformat()


def _traceql_string(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def is_error(span: Span) -> bool:
    return span.status_code == STATUS_ERROR


def _tree(spans: list[Span]) -> tuple[dict[str, Span], dict[str, list[Span]]]:
    by_id = {s.span_id: s for s in spans}
    children: dict[str, list[Span]] = defaultdict(list)
    for s in spans:
        if s.parent_span_id and s.parent_span_id in by_id and s.parent_span_id != s.span_id:
            children[s.parent_span_id].append(s)
    return by_id, children


def _depth(span: Span, by_id: dict[str, Span]) -> int:
    depth, seen, current = 0, {span.span_id}, span
    while current.parent_span_id in by_id and current.parent_span_id not in seen:
        current = by_id[current.parent_span_id]
        seen.add(current.span_id)
        depth += 1
    return depth


def error_origin(spans: Iterable[Span]) -> Span | None:
    """The span where a trace's errors originate: the deepest error span none of whose children is
    an error (ties: the earliest). None when no span has error status. A span whose parent is not in
    the trace counts as a root; cycles are cut."""
    spans = list(spans)
    by_id, children = _tree(spans)
    candidates = [s for s in spans if is_error(s) and not any(is_error(c) for c in children[s.span_id])]
    if not candidates:
        return None
    return max(candidates, key=lambda s: (_depth(s, by_id), -s.start_ns))


def _root(spans: list[Span], by_id: dict[str, Span]) -> Span:
    roots = [s for s in spans if not s.parent_span_id or s.parent_span_id not in by_id]
    return min(roots or spans, key=lambda s: s.start_ns)


def analyse(trace: Trace, matched: str) -> dict[str, Any]:
    """A fetched trace, bounded for the snapshot (≤ MAX_SPANS spans: the origin's ancestry and the
    error spans first, then the rest by start time), with its origin."""
    spans = trace.spans
    by_id, _ = _tree(spans)
    origin = error_origin(spans)
    root = _root(spans, by_id)
    start = min(s.start_ns for s in spans)
    end = max(s.end_ns for s in spans)
    keep: dict[str, None] = {}
    current = origin
    while current is not None and current.span_id not in keep:
        keep[current.span_id] = None
        current = by_id.get(current.parent_span_id or "")
    for s in sorted(spans, key=lambda s: (not is_error(s), s.start_ns)):
        if len(keep) >= MAX_SPANS:
            break
        keep.setdefault(s.span_id, None)
    chosen = sorted((by_id[i] for i in list(keep)[:MAX_SPANS]), key=lambda s: s.start_ns)
    return {
        "trace_id": trace.trace_id,
        "matched": matched,
        "root_service": root.service,
        "root_name": root.name,
        "start": _iso_ns(start),
        "start_s": start / 1e9,
        "duration_ms": round((end - start) / 1e6, 3),
        "span_count": len(spans),
        "spans_truncated": len(spans) > len(chosen),
        "services": sorted({s.service for s in spans}),
        "error_services": sorted({s.service for s in spans if is_error(s)}),
        "origin": None if origin is None else {
            "service": origin.service, "name": origin.name, "span_id": origin.span_id,
            "status_message": _cut(origin.status_message)},
        "spans": [{
            "id": s.span_id, "parent": s.parent_span_id, "service": s.service, "name": _cut(s.name, 200),
            "duration_ms": round(s.duration_ns / 1e6, 3), "error": is_error(s),
            "status_message": _cut(s.status_message), "origin": origin is not None and s.span_id == origin.span_id,
        } for s in chosen],
    }


def failure_status(exc: TelemetryError) -> str:
    return EvidenceStatus.TIMED_OUT if exc.kind == KIND_TIMEOUT else EvidenceStatus.UNAVAILABLE


class TracesCollector:
    step: ClassVar[str] = "traces"
    kind: ClassVar[str] = EvidenceKind.TRACES
    source: ClassVar[str] = "tempo"

    def __init__(self, client: TempoClient | None = None, *, grafana_url: str | None = None,
                 slow_threshold: str = SLOW_THRESHOLD, search_limit: int = SEARCH_LIMIT,
                 fetch_per_service: int = FETCH_PER_SERVICE, max_fetch: int = MAX_FETCH,
                 now: Callable[[], float] = time.time) -> None:
        self._client = client
        self._grafana_url = grafana_url
        self.slow_threshold = slow_threshold
        self.search_limit = int(search_limit)
        self.fetch_per_service = int(fetch_per_service)
        self.max_fetch = int(max_fetch)
        self._now = now

    @property
    def client(self) -> TempoClient:
        if self._client is None:
            self._client = TempoClient.shared()
        return self._client

    def configured(self) -> bool:
        if self._client is not None:
            return self._client.configured
        return bool(getattr(settings, "TEMPO_URL", ""))

    def queries(self, name: str) -> tuple[str, str]:
        quoted = _traceql_string(name)
        return (f"{{ resource.service.name = {quoted} && status = error }}",
                f"{{ resource.service.name = {quoted} && duration > {self.slow_threshold} }}")

    def collect(self, scope: Scope, deadline: float) -> tuple[list[EvidenceItem], CaseInputs]:
        items: list[EvidenceItem] = []
        errors: list[TelemetryError] = []
        succeeded = 0
        fetched: dict[str, dict[str, Any] | None] = {}  # trace id -> analysis (None: fetch failed)
        for service in scope.services:
            name = (scope.selectors.get(service) or {}).get("tempo.service") or service
            q_err, q_slow = self.queries(name)
            if time.monotonic() >= deadline:
                items.append(self._item(scope, service, q_err, {"service_name": name},
                                        "not queried: the investigation's deadline was reached",
                                        status=EvidenceStatus.TIMED_OUT))
                continue
            try:
                errs = self.client.search(q_err, scope.window_start, scope.window_end, limit=self.search_limit)
            except TelemetryError as exc:
                errors.append(exc)
                items.append(self._item(scope, service, q_err, {"service_name": name, "error": str(exc)},
                                        _cut(f"Tempo search failed: {exc}", 500), status=failure_status(exc)))
                continue
            succeeded += 1
            items.append(self._service(scope, service, name, q_err, q_slow, errs, deadline, fetched))
        if errors and not succeeded:
            raise errors[0]  # every service that was searched failed: Tempo itself is down
        inputs = CaseInputs(traces=self._summaries(fetched))
        return items, inputs

    def _service(self, scope: Scope, service: str, name: str, q_err: str, q_slow: str, errs, deadline: float,
                 fetched: dict) -> EvidenceItem:
        snapshot: dict[str, Any] = {
            "service_name": name,
            "window": {"start": scope.window_start.isoformat(), "end": scope.window_end.isoformat()},
            "limit": self.search_limit,
            "errors": {"query": q_err, "count": len(errs.traces),
                       "limit_reached": len(errs.traces) >= self.search_limit},
        }
        slow_traces: list = []
        slow_info: dict[str, Any] = {"query": q_slow, "threshold": self.slow_threshold}
        if time.monotonic() >= deadline:
            slow_info["skipped"] = "deadline reached"
        else:
            try:
                slow_traces = self.client.search(q_slow, scope.window_start, scope.window_end,
                                                 limit=self.search_limit).traces
                slow_info.update(count=len(slow_traces), limit_reached=len(slow_traces) >= self.search_limit)
            except TelemetryError as exc:
                slow_info["error"] = _cut(str(exc))
        snapshot["slow"] = slow_info
        conclusive = self.client.search_is_conclusive(scope.window_end, now=self._now())
        snapshot["conclusive"] = conclusive

        # Fetch a few: error traces first, then slow ones; each trace once per run.
        wanted = [(t.trace_id, "error") for t in errs.traces[: self.fetch_per_service]]
        error_ids = {t.trace_id for t in errs.traces}
        wanted += [(t.trace_id, "slow") for t in slow_traces if t.trace_id not in error_ids]
        wanted = wanted[: self.fetch_per_service]
        details, fetch_errors = [], []
        for trace_id, matched in wanted:
            if trace_id not in fetched:
                if len(fetched) >= self.max_fetch or time.monotonic() >= deadline:
                    continue
                try:
                    fetched[trace_id] = analyse(self.client.trace(trace_id), matched)
                except TelemetryError as exc:
                    fetched[trace_id] = None
                    fetch_errors.append({"trace_id": trace_id, "error": _cut(str(exc))})
                    continue
            if fetched[trace_id] is not None:
                details.append({k: v for k, v in fetched[trace_id].items() if k not in ("start_s", "services")}
                               | {"matched": matched})
        origins = Counter(d["origin"]["service"] for d in details if d["matched"] == "error" and d["origin"])
        snapshot["traces"] = details
        snapshot["origin_counts"] = dict(origins.most_common())
        if fetch_errors:
            snapshot["fetch_errors"] = fetch_errors

        n_err, n_slow = len(errs.traces), len(slow_traces)
        if not n_err and not n_slow:
            if not conclusive:
                return self._item(scope, service, q_err, snapshot, NOT_CONCLUSIVE, status=EvidenceStatus.NO_DATA)
            return self._item(scope, service, q_err, snapshot,
                              f"no error traces and none slower than {self.slow_threshold} in the window")
        parts = []
        score = 0.0
        if n_err:
            plus = "+" if n_err >= self.search_limit else ""
            text = f"{n_err}{plus} error trace{'s' if n_err != 1 else ''}"
            fetched_errors = [d for d in details if d["matched"] == "error"]
            if origins:
                top, _ = origins.most_common(1)[0]
                example = next(d["origin"] for d in fetched_errors if d["origin"] and d["origin"]["service"] == top)
                reason = example["name"] + (f": {example['status_message']}" if example["status_message"] else "")
                text += f"; errors originate in {top} ({_cut(reason, 200)})"
                score += 5.0 * origins.get(service, 0) / max(len(fetched_errors), 1)
            parts.append(text)
            score += min(5.0, 1.0 + n_err / 4)
        if n_slow:
            plus = "+" if n_slow >= self.search_limit else ""
            parts.append(f"{n_slow}{plus} trace{'s' if n_slow != 1 else ''} slower than {self.slow_threshold}")
            score += min(2.0, 0.5 + n_slow / 10)
        if not conclusive:
            parts.append("the last ~30 s may not be searchable yet")
        starts = [t.start_ns for t in errs.traces if t.start_ns] or [t.start_ns for t in slow_traces if t.start_ns]
        anomaly_start = datetime.fromtimestamp(min(starts) / 1e9, tz=timezone.utc) if starts else None
        return self._item(scope, service, q_err, snapshot, "; ".join(parts), score=round(score, 3),
                          anomaly_start=anomaly_start)

    @staticmethod
    def _summaries(fetched: dict[str, dict[str, Any] | None]) -> list:
        from investigation.rca import TraceSummary

        return [TraceSummary(trace_id=d["trace_id"], time=d["start_s"], services=tuple(d["services"]),
                             error_services=tuple(d["error_services"]),
                             origin_service=d["origin"]["service"] if d["origin"] else None,
                             duration_ms=d["duration_ms"])
                for d in fetched.values() if d is not None]

    def _item(self, scope: Scope, service: str, query: str, snapshot: dict, finding: str, *,
              status: str = EvidenceStatus.OK, score: float = 0.0,
              anomaly_start: datetime | None = None) -> EvidenceItem:
        return EvidenceItem(kind=self.kind, source=self.source, service=service, query=query,
                            snapshot=snapshot, finding=_cut(finding, 500), score=score, status=status,
                            explore_url=self._explore(query, scope), anomaly_start=anomaly_start)

    def _explore(self, query: str, scope: Scope) -> str:
        base = self._grafana_url if self._grafana_url is not None else getattr(settings, "GRAFANA_URL", "")
        if not base:
            return ""
        pane = grafana_links.tempo_search_pane(query, scope.window_start, scope.window_end, self.search_limit)
        return grafana_links.explore_url(base, {"traces": pane})
