"""Client for the Tempo HTTP API: TraceQL search and trace lookup (v1 and v2).

Wire-format facts handled here (checked against Tempo 3.1, see
``tests/fixtures/telemetry-api/live-loki-3.8-tempo-3.1/``):

- In search results 64-bit counters are JSON strings and 32-bit ones numbers
  (``metrics.inspectedBytes`` is a string); traces carry both ``spanSet``
  (deprecated singular) and ``spanSets``, plus ``serviceStats``
  (``{service: {spanCount, errorCount?}}``, parsed into
  ``TraceSummary.service_stats``). A matched span has ``name`` only when the
  query mentions it and ``attributes`` only for filtered/selected ones.
- Search answers trace ids **without leading zeros** (``0000f540…`` comes back
  as 28 hex digits). Every id this client returns is normalised to 32 (trace)
  or 16 (span) lowercase hex digits, so it matches the ids found in logs;
  ``trace()`` accepts hex with or without leading zeros, and base64.
- Trace JSON is gogo-jsonpb, so ``traceId``/``spanId`` are base64 and ``kind`` /
  ``status.code`` are enum names; v1 wraps spans in ``batches``, v2 in
  ``{trace: {resourceSpans}}``.
- ``/api/v2/traces/<id>`` answers **200** ``{"trace":{},"metrics":{}}`` for a
  trace it does not have (Tempo >= 2.6); only v1 answers 404. Both become
  ``TempoError(kind="not_found")``.
- Search lags ingestion: a trace becomes searchable ~25–35 s after it was pushed
  (trace-by-id works at once). An empty search whose window ends less than
  ``SEARCH_INGEST_DELAY_S`` ago is therefore not proof that there are no such
  traces: ask :meth:`TempoClient.search_is_conclusive`.
"""

from __future__ import annotations

import base64
import binascii
import math
import re
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Iterable

from .base import HttpClient
from .timeutil import to_unix_seconds
from .config import http_client_kwargs
from .errors import KIND_BAD_DATA, KIND_NOT_FOUND, TempoError

_HEX = re.compile(r"^[0-9a-fA-F]+$")
TRACE_ID_HEX_DIGITS = 32
SPAN_ID_HEX_DIGITS = 16
# Seconds after a push before Tempo's search sees a trace (observed 25–35 s on
# Tempo 3.1 single-binary; trace-by-id is immediate). The upper bound is used.
SEARCH_INGEST_DELAY_S = 35.0
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
    # ``serviceStats``: {service: {"span_count": int, "error_count": int}} (Tempo >= 2.5).
    service_stats: dict[str, dict[str, int]] = field(default_factory=dict)

    @property
    def error_count(self) -> int:
        """Error spans in the whole trace, summed over ``service_stats``."""
        return sum(stats.get("error_count", 0) for stats in self.service_stats.values())

    @property
    def services_with_errors(self) -> list[str]:
        """Sorted services with at least one error span (from ``service_stats``)."""
        return sorted(name for name, stats in self.service_stats.items() if stats.get("error_count"))


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
    """Tempo query client. ``api_version`` "auto" tries v2 then falls back to v1.

    Search is eventually consistent: traces pushed in the last
    ``SEARCH_INGEST_DELAY_S`` seconds (35 s) may not be found yet, while
    ``trace(id)`` finds them at once. Before concluding "no traces" from an
    empty :meth:`search`, check ``search_is_conclusive(end, now)``.
    """

    source = "tempo"
    error_cls = TempoError
    url_setting = "TEMPO_URL"
    SEARCH_INGEST_DELAY_S = SEARCH_INGEST_DELAY_S

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

    def search_is_conclusive(
        self, end: datetime | float | int | str | None, now: datetime | float | int | str | None = None
    ) -> bool:
        """Whether an empty search over a window ending at ``end`` means "no such traces".

        False while ``end`` is less than ``SEARCH_INGEST_DELAY_S`` before ``now``
        (default: the current time), or when ``end`` is None (the search ran up to
        now): traces pushed in that tail are not searchable yet.
        """
        if end is None:
            return False
        now_s = time.time() if now is None else to_unix_seconds(now)
        return now_s - to_unix_seconds(end) >= self.SEARCH_INGEST_DELAY_S

    def trace(self, trace_id: str) -> Trace:
        """Fetch a trace by id; raises ``TempoError(kind="not_found")`` if absent.

        ``trace_id`` may be hex with or without leading zeros, any case, or the
        base64 form found in OTLP/jsonpb JSON; it is sent as 32 lowercase hex
        digits. A v2 answer of 200 with an empty trace (Tempo's "not found")
        raises ``not_found`` too, without falling back to v1.
        """
        try:
            trace_id = normalize_trace_id(trace_id)
        except ValueError as exc:
            raise self._error(str(exc), kind=KIND_BAD_DATA) from None
        if self.api_version in ("auto", "v2"):
            try:
                body = self._json(self._request("GET", f"/api/v2/traces/{trace_id}"))
            except TempoError as exc:
                # An old Tempo without /api/v2 answers 404 "page not found".
                if self.api_version == "v2" or exc.kind != KIND_NOT_FOUND:
                    raise
            else:
                if self.api_version == "auto":
                    self.api_version = "v2"  # remember, skip the probe next time
                return self._parse_trace(trace_id, body)
        body = self._json(self._request("GET", f"/api/traces/{trace_id}"))
        trace = self._parse_trace(trace_id, body)
        if self.api_version == "auto":
            self.api_version = "v1"
        return trace

    def _parse_error_body(self, resp: Any) -> tuple[str | None, str]:
        kind, text = super()._parse_error_body(resp)
        if resp.status_code == 400:
            kind = KIND_BAD_DATA  # "invalid TraceQL query: parse error ...", bad trace id
        return kind, text

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
        if not spans:
            # Tempo >= 2.6 answers v2 lookups of unknown traces with 200 {"trace":{},"metrics":{}}.
            raise self._error(
                f"trace {trace_id} not found (empty trace in the response)", kind=KIND_NOT_FOUND
            )
        return Trace(spans[0].trace_id, spans, partial=body.get("status") == "PARTIAL")


def _normalize_id(value: str, digits: int, what: str) -> str:
    text = str(value).strip()
    if text[:2].lower() == "0x":
        text = text[2:]
    if _HEX.match(text) and len(text) <= digits:
        return text.lower().rjust(digits, "0")
    try:
        raw = base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError):
        raw = b""
    if raw and len(raw) <= digits // 2:
        return raw.hex().rjust(digits, "0")
    raise ValueError(f"invalid {what} {value!r}: expected up to {digits} hex digits or base64")


def normalize_trace_id(value: str) -> str:
    """A trace id as 32 lowercase hex digits.

    Accepts hex of any case with or without leading zeros (Tempo's search drops
    them: ``f5403db0…`` for ``0000f5403db0…``) and base64 (jsonpb/OTLP JSON).
    Raises ValueError for anything else.
    """
    return _normalize_id(value, TRACE_ID_HEX_DIGITS, "trace id")


def normalize_span_id(value: str) -> str:
    """A span id as 16 lowercase hex digits (same inputs as :func:`normalize_trace_id`)."""
    return _normalize_id(value, SPAN_ID_HEX_DIGITS, "span id")


def id_to_hex(value: str | None, digits: int = TRACE_ID_HEX_DIGITS) -> str | None:
    """Trace/span ids: base64 in jsonpb, hex in OTLP/JSON. Return ``digits`` lowercase hex digits."""
    if not value:
        return None
    return _normalize_id(value, digits, "id")


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
                    span_id=id_to_hex(raw["spanId"], SPAN_ID_HEX_DIGITS) or "",
                    parent_span_id=id_to_hex(raw.get("parentSpanId"), SPAN_ID_HEX_DIGITS),
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
                    span_id=normalize_span_id(s["spanID"]),
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
        trace_id=normalize_trace_id(raw["traceID"]),
        root_service=raw.get("rootServiceName"),
        root_name=raw.get("rootTraceName"),
        start_ns=int(raw.get("startTimeUnixNano") or 0),
        duration_ms=int(duration) if duration is not None else None,
        span_sets=span_sets,
        service_stats={
            str(name): {"span_count": int(stats.get("spanCount") or 0),
                        "error_count": int(stats.get("errorCount") or 0)}
            for name, stats in (raw.get("serviceStats") or {}).items()
        },
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
