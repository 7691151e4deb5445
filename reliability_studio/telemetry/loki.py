"""Client for the Loki HTTP API: log/metric queries, label discovery and push.

Wire-format facts handled here (checked against Loki 3.8, see
``tests/fixtures/telemetry-api/live-loki-3.8-tempo-3.1/``):

- Stream timestamps are strings of Unix *nanoseconds* (kept as exact ints — a
  float would lose the last digits). Matrix timestamps are JSON integers when
  whole seconds, vector ones floats like ``1796114735.681``: both become float
  seconds.
- Structured metadata (``trace_id``, ``pod``, ``detected_level``, ...) comes
  back separately only when the request sends
  ``X-Loki-Response-Encoding-Flags: categorize-labels``: then ``data.encodingFlags``
  lists ``categorize-labels`` and each value is
  ``[ts, line, {"structuredMetadata": {...}, "parsed": {...}}]``. Without the
  header Loki merges it into the stream labels (and splits streams by it). Query
  calls always send the header; the plain shape (older Loki) still parses.
- Loki 3 adds the labels ``service_name`` (from ``service`` & co.) and
  ``detected_level``; see ``LogEntry.level`` / ``LogEntry.service``.
- An instant query (``/query``) with a log selector is refused with 400 ("log
  queries are not supported as an instant query type"); :meth:`LokiClient.query`
  refuses it before sending. Every 400 becomes ``LokiError(kind="bad_data")``.
- ``stats`` changes shape between versions (kept raw, never interpreted), and
  errors are plain-text bodies.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Sequence
from urllib.parse import quote

from .base import HttpClient
from .timeutil import to_unix_ns
from .config import http_client_kwargs
from .errors import KIND_BAD_DATA, LokiError
from .prometheus import Sample, Series, parse_value
from .tempo import normalize_trace_id

TimeLike = dt.datetime | float | int | str

ENCODING_FLAGS_HEADER = "X-Loki-Response-Encoding-Flags"
CATEGORIZE_LABELS = "categorize-labels"
_QUERY_HEADERS = {ENCODING_FLAGS_HEADER: CATEGORIZE_LABELS}
_TRACE_ID_KEYS = ("trace_id", "traceID", "traceId", "trace.id")


@dataclass(slots=True)
class LogEntry:
    """One log line. ``timestamp_ns`` is exact; ``datetime`` is rounded to microseconds.

    ``labels`` are the stream labels exactly as Loki sent them (including Loki's
    own ``service_name``/``detected_level`` when present). ``structured_metadata``
    and ``parsed`` are the categorized third element of the value; ``metadata``
    is both merged (parsed wins). ``all_labels`` is everything in one dict, the
    view a Loki without ``categorize-labels`` gives in the stream labels.
    """

    timestamp_ns: int
    line: str
    labels: dict[str, str]
    metadata: dict[str, str] = field(default_factory=dict)
    structured_metadata: dict[str, str] = field(default_factory=dict)
    parsed: dict[str, str] = field(default_factory=dict)

    @property
    def all_labels(self) -> dict[str, str]:
        return {**self.labels, **self.metadata}

    @property
    def level(self) -> str | None:
        """``detected_level`` (structured metadata or label) if Loki set it, else a ``level`` label/field."""
        for key in ("detected_level", "level"):
            for source in (self.structured_metadata, self.labels, self.parsed, self.metadata):
                if source.get(key):
                    return source[key]
        return None

    @property
    def service(self) -> str | None:
        """Loki's ``service_name`` label, else ``service``/``app``/``job``."""
        merged = self.all_labels
        for key in ("service_name", "service", "app", "job"):
            if merged.get(key):
                return merged[key]
        return None

    @property
    def trace_id(self) -> str | None:
        """The ``trace_id`` metadata/label as 32 lowercase hex digits (as Tempo ids are), or None."""
        merged = self.all_labels
        for key in _TRACE_ID_KEYS:
            if merged.get(key):
                try:
                    return normalize_trace_id(merged[key])
                except ValueError:
                    return None
        return None

    @property
    def datetime(self) -> dt.datetime:
        seconds, nanos = divmod(self.timestamp_ns, 10**9)
        return dt.datetime.fromtimestamp(seconds, tz=dt.timezone.utc).replace(
            microsecond=nanos // 1000
        )


@dataclass(slots=True)
class LogStream:
    labels: dict[str, str]
    entries: list[LogEntry]


@dataclass(slots=True)
class LokiQueryResult:
    """``result_type`` "streams" fills ``streams``; "matrix" ``series``; "vector" ``samples``."""

    result_type: str
    streams: list[LogStream] = field(default_factory=list)
    series: list[Series] = field(default_factory=list)
    samples: list[Sample] = field(default_factory=list)
    stats: dict[str, Any] = field(default_factory=dict)
    encoding_flags: list[str] = field(default_factory=list)  # ["categorize-labels"] when honoured

    @property
    def entries(self) -> list[LogEntry]:
        """All log lines across streams, oldest first."""
        lines = [entry for stream in self.streams for entry in stream.entries]
        lines.sort(key=lambda e: e.timestamp_ns)
        return lines


class LokiClient(HttpClient):
    """Loki query/push client (``X-Scope-OrgID`` via ``tenant``)."""

    source = "loki"
    error_cls = LokiError
    url_setting = "LOKI_URL"

    @classmethod
    def from_settings(cls, settings: Any = None) -> "LokiClient":
        """Build from ``LOKI_URL``, ``LOKI_TOKEN``, ``LOKI_TENANT`` and ``TELEMETRY_*``."""
        return cls(**http_client_kwargs("LOKI", settings))

    def query_range(
        self,
        logql: str,
        start: TimeLike,
        end: TimeLike,
        limit: int = 100,
        direction: str = "backward",
        step: float | str | None = None,
    ) -> LokiQueryResult:
        """Run a LogQL range query; log queries return streams, metric queries a matrix."""
        if direction not in ("backward", "forward"):
            raise ValueError("direction must be 'backward' or 'forward'")
        params: dict[str, Any] = {
            "query": logql,
            "start": str(to_unix_ns(start)),
            "end": str(to_unix_ns(end)),
            "limit": int(limit),
            "direction": direction,
        }
        if step is not None:
            params["step"] = step
        return self._parse(self._get_json("/loki/api/v1/query_range", params, _QUERY_HEADERS))

    def query(
        self, logql: str, time: TimeLike | None = None, limit: int = 100, direction: str = "backward"
    ) -> LokiQueryResult:
        """Instant LogQL *metric* query (gives a vector).

        Loki refuses a log query (a plain ``{...}`` selector with optional
        pipeline) as an instant query; this raises ``LokiError(kind="bad_data")``
        before sending — use :meth:`query_range` for log lines.
        """
        if is_log_query(logql):
            raise self._error(
                f"{logql!r} is a log query: Loki only runs metric queries as instant queries; "
                "use query_range() for log lines",
                kind=KIND_BAD_DATA,
            )
        params: dict[str, Any] = {"query": logql, "limit": int(limit), "direction": direction}
        if time is not None:
            params["time"] = str(to_unix_ns(time))
        return self._parse(self._get_json("/loki/api/v1/query", params, _QUERY_HEADERS))

    def labels(self, start: TimeLike | None = None, end: TimeLike | None = None) -> list[str]:
        """Known label names."""
        return self._list("/loki/api/v1/labels", _range(start, end))

    def label_values(
        self, name: str, start: TimeLike | None = None, end: TimeLike | None = None,
        query: str | None = None,
    ) -> list[str]:
        """Known values of label ``name`` (optionally within a stream selector ``query``)."""
        params = _range(start, end)
        if query:
            params["query"] = query
        return self._list(f"/loki/api/v1/label/{quote(name, safe='')}/values", params)

    def push(self, streams: Iterable[Mapping[str, Any] | tuple[Mapping[str, str], Sequence]]) -> None:
        """Push log lines. Not retried (a retry could duplicate lines).

        ``streams`` items are Loki-shaped ``{"stream": labels, "values": [[ts, line, meta?]]}``
        or ``(labels, [(ts, line[, metadata]), ...])``; ``ts`` may be ns ints/strings,
        datetimes or float seconds and is always sent as a nanosecond string.
        """
        payload = {"streams": [_push_stream(item) for item in streams]}
        self._request("POST", "/loki/api/v1/push", json_body=payload, idempotent=False)

    # -- plumbing -----------------------------------------------------------

    def _get_json(
        self, path: str, params: Mapping[str, Any], headers: Mapping[str, str] | None = None
    ) -> dict[str, Any]:
        body = self._json(self._request("GET", path, params=params, headers=headers))
        if not isinstance(body, dict) or body.get("status") != "success":
            raise self._bad_response(f"{path} status is not success")
        return body

    def _list(self, path: str, params: Mapping[str, Any]) -> list[str]:
        data = self._get_json(path, params).get("data")
        return list(data or [])

    def _parse(self, body: dict[str, Any]) -> LokiQueryResult:
        data = body.get("data")
        if not isinstance(data, dict) or "resultType" not in data:
            raise self._bad_response("query data has no resultType")
        rtype = data["resultType"]
        out = LokiQueryResult(result_type=rtype, stats=data.get("stats") or {},
                              encoding_flags=[str(f) for f in data.get("encodingFlags") or []])
        try:
            for item in data.get("result") or []:
                if rtype == "streams":
                    labels = item.get("stream") or {}
                    entries = [_entry(labels, value) for value in item.get("values") or []]
                    out.streams.append(LogStream(labels, entries))
                elif rtype == "matrix":
                    values = item.get("values") or []
                    out.series.append(Series(
                        item.get("metric") or {},
                        [float(ts) for ts, _ in values],
                        [parse_value(v) for _, v in values],
                    ))
                elif rtype == "vector":
                    ts, raw = item["value"]
                    out.samples.append(Sample(item.get("metric") or {}, float(ts), parse_value(raw)))
                else:
                    raise self._bad_response(f"unknown resultType {rtype!r}")
        except (TypeError, KeyError, ValueError) as exc:
            raise self._bad_response(f"malformed {rtype} result ({type(exc).__name__})") from None
        return out

    def _parse_error_body(self, resp: Any) -> tuple[str | None, str]:
        kind, text = super()._parse_error_body(resp)
        if resp.status_code == 400:
            kind = KIND_BAD_DATA  # parse errors, log query as instant query, limits
        return kind, text


def is_log_query(logql: str) -> bool:
    """True for a LogQL *log* query: a complete ``{...}`` stream selector, optionally piped.

    Metric queries start with a function, aggregation, number or parenthesis.
    Leading ``#`` comment lines are skipped. An unterminated selector is left to
    Loki (which answers with its parse error).
    """
    lines = [line for line in logql.splitlines() if not line.lstrip().startswith("#")]
    text = "\n".join(lines).lstrip()
    return text.startswith("{") and "}" in text


def _entry(labels: dict[str, str], value: Sequence[Any]) -> LogEntry:
    structured: dict[str, str] = {}
    parsed: dict[str, str] = {}
    if len(value) > 2 and isinstance(value[2], dict):
        extra = value[2]
        # With "X-Loki-Response-Encoding-Flags: categorize-labels" the third
        # element is {"structuredMetadata": {...}, "parsed": {...}}; either key
        # is omitted when empty.
        if "structuredMetadata" in extra or "parsed" in extra:
            structured.update(extra.get("structuredMetadata") or {})
            parsed.update(extra.get("parsed") or {})
        else:  # a bare metadata object (push-request shape)
            structured.update(extra)
    return LogEntry(int(value[0]), str(value[1]), labels, {**structured, **parsed}, structured, parsed)


def _push_stream(item: Mapping[str, Any] | tuple) -> dict[str, Any]:
    if isinstance(item, Mapping):
        labels, values = item["stream"], item["values"]
    else:
        labels, values = item
    out_values = []
    for value in values:
        row: list[Any] = [str(to_unix_ns(value[0])), str(value[1])]
        if len(value) > 2 and value[2]:
            row.append({str(k): str(v) for k, v in dict(value[2]).items()})
        out_values.append(row)
    return {"stream": dict(labels), "values": out_values}


def _range(start: TimeLike | None, end: TimeLike | None) -> dict[str, Any]:
    params: dict[str, Any] = {}
    if start is not None:
        params["start"] = str(to_unix_ns(start))
    if end is not None:
        params["end"] = str(to_unix_ns(end))
    return params
