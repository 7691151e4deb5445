"""Client for the Tempo HTTP API: TraceQL search and trace lookup (v1 and v2).

Wire-format facts handled here: in search results 64-bit counters are JSON
strings and 32-bit ones numbers; old versions send ``spanSet`` (singular);
trace JSON is gogo-jsonpb, so ``traceId``/``spanId`` are base64 and ``kind`` /
``status.code`` are enum names; v1 wraps spans in ``batches``, v2 in
``{trace: {resourceSpans}}``.
"""

from __future__ import annotations

import base64
import binascii
import math
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Iterable

from .base import HttpClient
from .timeutil import to_unix_seconds
from .config import http_client_kwargs
from .errors import KIND_NOT_FOUND, TempoError

_HEX_ID = re.compile(r"^(?:[0-9a-fA-F]{16}|[0-9a-fA-F]{32})$")
_SPAN_KINDS = ["SPAN_KIND_UNSPECIFIED", "SPAN_KIND_INTERNAL", "SPAN_KIND_SERVER",
               "SPAN_KIND_CLIENT", "SPAN_KIND_PRODUCER", "SPAN_KIND_CONSUMER"]
_STATUS_CODES = ["STATUS_CODE_UNSET", "STATUS_CODE_OK", "STATUS_CODE_ERROR"]
STATUS_ERROR = "STATUS_CODE_ERROR"


@dataclass(slots=True)
class Span:
    trace_id: str  # lowercase hex
    span_id: str
    parent_span_id: str | None
    service: str
    name: str
    kind: str  # SPAN_KIND_* enum name
    start_ns: int
    end_ns: int
    status_code: str  # STATUS_CODE_* enum name
    status_message: str
    attributes: dict[str, Any]
    resource: dict[str, Any] = field(default_factory=dict)

    @property
    def duration_ns(self) -> int:
        return self.end_ns - self.start_ns


@dataclass(slots=True)
class Trace:
    trace_id: str
    spans: list[Span]
    partial: bool = False  # v2 "status": "PARTIAL" (some blocks could not be read)


@dataclass(slots=True)
class SpanMatch:
    span_id: str
    name: str | None
    start_ns: int
    duration_ns: int
    attributes: dict[str, Any]


@dataclass(slots=True)
class SpanSet:
    spans: list[SpanMatch]
    matched: int
    attributes: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class TraceSummary:
    trace_id: str
    root_service: str | None
    root_name: str | None
    start_ns: int
    duration_ms: int | None
    span_sets: list[SpanSet]


@dataclass(slots=True)
class SearchResult:
    traces: list[TraceSummary]
    metrics: dict[str, Any]  # numeric counters coerced to int, nested dicts kept


def error_spans(trace: Trace) -> list[Span]:
    """Spans whose status is ``STATUS_CODE_ERROR``, in start order."""
    return sorted((s for s in trace.spans if s.status_code == STATUS_ERROR), key=lambda s: s.start_ns)


def services_with_errors(trace: Trace) -> list[str]:
    """Sorted names of services owning at least one error span."""
    return sorted({s.service for s in error_spans(trace)})


class TempoClient(HttpClient):
    """Tempo query client. ``api_version`` "auto" tries v2 then falls back to v1."""

    source = "tempo"
    error_cls = TempoError
    url_setting = "TEMPO_URL"

    def __init__(self, url: str | None, *, api_version: str = "auto", **kwargs: Any) -> None:
        super().__init__(url, **kwargs)
        if api_version not in ("auto", "v1", "v2"):
            raise ValueError("api_version must be 'auto', 'v1' or 'v2'")
        self.api_version = api_version

    @classmethod
    def from_settings(cls, settings: Any = None) -> "TempoClient":
        """Build from ``TEMPO_URL``, ``TEMPO_TOKEN`` and ``TELEMETRY_*``."""
        return cls(**http_client_kwargs("TEMPO", settings))

    def search(
        self,
        traceql: str,
        start: datetime | float | int | str | None = None,
        end: datetime | float | int | str | None = None,
        limit: int = 20,
        spans_per_span_set: int | None = None,
    ) -> SearchResult:
        """TraceQL search (``/api/search?q=``); start/end are sent as Unix seconds."""
        params: dict[str, Any] = {"q": traceql, "limit": int(limit)}
        if start is not None:
            params["start"] = int(to_unix_seconds(start))
        if end is not None:
            params["end"] = math.ceil(to_unix_seconds(end))  # whole seconds; don't cut off the tail
        if spans_per_span_set is not None:
            params["spss"] = int(spans_per_span_set)
        body = self._json(self._request("GET", "/api/search", params=params))
        if not isinstance(body, dict):
            raise self._bad_response("search body is not an object")
        try:
            traces = [_summary(t) for t in body.get("traces") or []]
        except (TypeError, KeyError, ValueError) as exc:
            raise self._bad_response(f"malformed search result ({type(exc).__name__})") from None
        return SearchResult(traces, _ints(body.get("metrics") or {}))

    def trace(self, trace_id: str) -> Trace:
        """Fetch a trace by hex id; raises ``TempoError(kind="not_found")`` if absent."""
        trace_id = trace_id.strip().lower()
        if self.api_version in ("auto", "v2"):
            try:
                body = self._json(self._request("GET", f"/api/v2/traces/{trace_id}"))
                if self.api_version == "auto":
                    self.api_version = "v2"  # remember, skip the probe next time
                return self._parse_trace(trace_id, body)
            except TempoError as exc:
                # An old Tempo without /api/v2 answers 404 "page not found".
                if self.api_version == "v2" or exc.kind != KIND_NOT_FOUND:
                    raise
        body = self._json(self._request("GET", f"/api/traces/{trace_id}"))
        trace = self._parse_trace(trace_id, body)
        if self.api_version == "auto":
            self.api_version = "v1"
        return trace

    def _parse_trace(self, trace_id: str, body: Any) -> Trace:
        if not isinstance(body, dict):
            raise self._bad_response("trace body is not an object")
        if "trace" in body:  # v2 TraceByIDResponse
            resource_spans = (body.get("trace") or {}).get("resourceSpans") or []
        else:  # v1 ("batches") or raw OTLP ("resourceSpans")
            resource_spans = body.get("batches") or body.get("resourceSpans") or []
        try:
            spans = list(_spans(resource_spans))
        except (TypeError, KeyError, ValueError, binascii.Error) as exc:
            raise self._bad_response(f"malformed trace ({type(exc).__name__})") from None
        if spans:
            trace_id = spans[0].trace_id
        return Trace(trace_id, spans, partial=body.get("status") == "PARTIAL")


def id_to_hex(value: str | None) -> str | None:
    """Trace/span ids: base64 in jsonpb, hex in OTLP/JSON. Return lowercase hex."""
    if not value:
        return None
    if _HEX_ID.match(value):
        return value.lower()
    return base64.b64decode(value, validate=True).hex()


def _enum(value: Any, names: list[str], default: str) -> str:
    if value is None:
        return default
    if isinstance(value, int):  # protojson with enum numbers
        return names[value] if 0 <= value < len(names) else str(value)
    return str(value)


def any_value(value: dict[str, Any]) -> Any:
    """Decode an OTLP ``AnyValue`` (intValue is a string in JSON: int64)."""
    if "stringValue" in value:
        return value["stringValue"]
    if "intValue" in value:
        return int(value["intValue"])
    if "doubleValue" in value:
        return float(value["doubleValue"])
    if "boolValue" in value:
        return bool(value["boolValue"])
    if "arrayValue" in value:
        return [any_value(v) for v in (value["arrayValue"].get("values") or [])]
    if "kvlistValue" in value:
        return attributes(value["kvlistValue"].get("values"))
    if "bytesValue" in value:
        return value["bytesValue"]
    return None


def attributes(items: Iterable[dict[str, Any]] | None) -> dict[str, Any]:
    """OTLP ``[{key, value: AnyValue}]`` list -> plain dict."""
    return {item["key"]: any_value(item.get("value") or {}) for item in items or []}


def _spans(resource_spans: list[dict[str, Any]]) -> Iterable[Span]:
    for batch in resource_spans:
        resource = attributes((batch.get("resource") or {}).get("attributes"))
        service = str(resource.get("service.name", "unknown"))
        # "instrumentationLibrarySpans" is the pre-OTLP-0.15 name of scopeSpans.
        scopes = batch.get("scopeSpans") or batch.get("instrumentationLibrarySpans") or []
        for scope in scopes:
            for raw in scope.get("spans") or []:
                status = raw.get("status") or {}
                yield Span(
                    trace_id=id_to_hex(raw["traceId"]) or "",
                    span_id=id_to_hex(raw["spanId"]) or "",
                    parent_span_id=id_to_hex(raw.get("parentSpanId")),
                    service=service,
                    name=raw.get("name", ""),
                    kind=_enum(raw.get("kind"), _SPAN_KINDS, "SPAN_KIND_UNSPECIFIED"),
                    start_ns=int(raw.get("startTimeUnixNano") or 0),
                    end_ns=int(raw.get("endTimeUnixNano") or 0),
                    status_code=_enum(status.get("code"), _STATUS_CODES, "STATUS_CODE_UNSET"),
                    status_message=status.get("message", ""),
                    attributes=attributes(raw.get("attributes")),
                    resource=resource,
                )


def _summary(raw: dict[str, Any]) -> TraceSummary:
    sets = raw.get("spanSets")
    if sets is None and raw.get("spanSet"):  # deprecated singular form
        sets = [raw["spanSet"]]
    span_sets = [
        SpanSet(
            spans=[
                SpanMatch(
                    span_id=s["spanID"],
                    name=s.get("name"),
                    start_ns=int(s.get("startTimeUnixNano") or 0),
                    duration_ns=int(s.get("durationNanos") or 0),
                    attributes=attributes(s.get("attributes")),
                )
                for s in ss.get("spans") or []
            ],
            matched=int(ss.get("matched") or 0),
            attributes=attributes(ss.get("attributes")),
        )
        for ss in sets or []
    ]
    duration = raw.get("durationMs")
    return TraceSummary(
        trace_id=str(raw["traceID"]).lower(),
        root_service=raw.get("rootServiceName"),
        root_name=raw.get("rootTraceName"),
        start_ns=int(raw.get("startTimeUnixNano") or 0),
        duration_ms=int(duration) if duration is not None else None,
        span_sets=span_sets,
    )


def _ints(metrics: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in metrics.items():
        if isinstance(value, dict):
            out[key] = _ints(value)
        elif isinstance(value, str) and value.lstrip("-").isdigit():
            out[key] = int(value)  # uint64 counters arrive as strings
        else:
            out[key] = value
    return out
