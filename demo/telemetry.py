"""Structured logs (stdout, optionally Loki) and spans (optionally Tempo via OTLP/HTTP JSON).

Exports are batched and sent once a second from one background thread.
Export failures are reported on stderr (rate-limited) and never reach the
request path: observability backends going down must not take the shop down.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import secrets
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass, field

import requests

from .topology import APP

MAX_BUFFER = 20_000  # per signal; oldest entries are dropped beyond this
FLUSH_INTERVAL_S = 1.0
OTLP_KIND = {"server": 2, "client": 3}


def new_trace_id() -> str:
    """A W3C/OTLP trace id: 32 lowercase hex chars."""
    return secrets.token_hex(16)


def new_span_id() -> str:
    """A W3C/OTLP span id: 16 lowercase hex chars."""
    return secrets.token_hex(8)


def parse_traceparent(header: str | None) -> tuple[str, str] | None:
    """(trace_id, parent_span_id) from a W3C ``traceparent`` header, or None if absent/invalid."""
    if not header:
        return None
    parts = header.strip().split("-")
    if len(parts) != 4 or len(parts[1]) != 32 or len(parts[2]) != 16:
        return None
    try:
        int(parts[1], 16), int(parts[2], 16)
    except ValueError:
        return None
    return parts[1], parts[2]


@dataclass
class Span:
    """A finished span, kept in a small dataclass until it is encoded as OTLP JSON."""

    service: str
    name: str
    kind: str
    trace_id: str
    span_id: str
    parent_span_id: str | None
    start_ns: int
    end_ns: int
    attributes: dict = field(default_factory=dict)
    error: str | None = None
    # (name, time_ns, attributes), e.g. an OTel "exception" event with exception.type/.message.
    events: list[tuple[str, int, dict]] = field(default_factory=list)


def exception_event(exc_type: str, message: str, time_ns: int | None = None) -> tuple[str, int, dict]:
    """An OpenTelemetry ``exception`` span event."""
    return ("exception", time_ns or time.time_ns(),
            {"exception.type": exc_type, "exception.message": message})


def _otlp_value(value: object) -> dict:
    if isinstance(value, bool):
        return {"boolValue": value}
    if isinstance(value, int):
        return {"intValue": str(value)}  # OTLP JSON encodes int64 as a string
    if isinstance(value, float):
        return {"doubleValue": value}
    return {"stringValue": str(value)}


def encode_otlp(spans: list[Span]) -> dict:
    """Encode spans as an OTLP/HTTP JSON ``ExportTraceServiceRequest`` (one resource per service)."""
    by_service: dict[str, list[dict]] = {}
    for span in spans:
        encoded = {
            "traceId": span.trace_id,
            "spanId": span.span_id,
            "name": span.name,
            "kind": OTLP_KIND[span.kind],
            "startTimeUnixNano": str(span.start_ns),
            "endTimeUnixNano": str(span.end_ns),
            "attributes": [{"key": k, "value": _otlp_value(v)} for k, v in span.attributes.items()],
            # STATUS_CODE_ERROR = 2, STATUS_CODE_OK = 1
            "status": {"code": 2, "message": span.error} if span.error else {"code": 1},
        }
        if span.parent_span_id:
            encoded["parentSpanId"] = span.parent_span_id
        if span.events:
            encoded["events"] = [
                {"timeUnixNano": str(ts), "name": name,
                 "attributes": [{"key": k, "value": _otlp_value(v)} for k, v in attrs.items()]}
                for name, ts, attrs in span.events
            ]
        by_service.setdefault(span.service, []).append(encoded)
    return {"resourceSpans": [
        {
            "resource": {"attributes": [
                {"key": "service.name", "value": {"stringValue": service}},
                {"key": "service.namespace", "value": {"stringValue": APP}},
            ]},
            "scopeSpans": [{"scope": {"name": "demo.shop"}, "spans": encoded_spans}],
        }
        for service, encoded_spans in by_service.items()
    ]}


# Log fields also sent to Loki as structured metadata (Loki 3.x, `allow_structured_metadata`), so
# `| trace_id="..."` filters and log-to-trace joins work without parsing the JSON line.
STRUCTURED_METADATA = ("trace_id", "span_id")


def encode_loki(entries: list[tuple]) -> dict:
    """Encode (service, timestamp_ns, line[, metadata]) entries as a Loki push body.

    One stream per service (labels ``service`` and ``app``); an entry with non-empty metadata
    becomes ``[ts, line, {"trace_id": ...}]`` (structured metadata), others ``[ts, line]``.
    """
    streams: dict[str, list[list]] = {}
    for service, ts_ns, line, *rest in sorted(entries, key=lambda e: e[1]):
        value: list = [str(ts_ns), line]
        if rest and rest[0]:
            value.append(rest[0])
        streams.setdefault(service, []).append(value)
    return {"streams": [
        {"stream": {"service": service, "app": APP}, "values": values}
        for service, values in streams.items()
    ]}


class Telemetry:
    """Writes JSON log lines to stdout and ships logs/spans to Loki/Tempo when configured."""

    def __init__(self, loki_url: str | None = None, tempo_url: str | None = None,
                 stream=None) -> None:
        self.loki_url = (loki_url or "").rstrip("/")
        self.tempo_url = (tempo_url or "").rstrip("/")
        self._stream = stream or sys.stdout
        self._write_lock = threading.Lock()
        self._logs: deque[tuple[str, int, str, dict]] = deque(maxlen=MAX_BUFFER)
        self._spans: deque[Span] = deque(maxlen=MAX_BUFFER)
        self._session = requests.Session()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_complaint: dict[str, float] = {}

    @classmethod
    def from_env(cls, environ=None) -> "Telemetry":
        """Configure from the environment; an empty value disables that export.

        Logs go to ``DEMO_LOKI_URL`` (Loki's base URL; falls back to ``LOKI_URL`` when unset),
        spans to ``DEMO_TEMPO_OTLP_URL`` (Tempo's OTLP/HTTP *receiver*, e.g. :4318 - not its
        query API on :3200; falls back to ``TEMPO_URL`` when unset). A set-but-empty ``DEMO_*``
        variable disables the export even when the fallback is set.
        """
        environ = os.environ if environ is None else environ

        def pick(own: str, fallback: str) -> str:
            return environ[own] if own in environ else environ.get(fallback, "")

        return cls(pick("DEMO_LOKI_URL", "LOKI_URL"), pick("DEMO_TEMPO_OTLP_URL", "TEMPO_URL"))

    def log(self, service: str, level: str, msg: str, **fields: object) -> None:
        """Emit one structured event for ``service``."""
        now_ns = time.time_ns()
        record = {
            "ts": dt.datetime.fromtimestamp(now_ns / 1e9, tz=dt.timezone.utc)
            .isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": level,
            "service": service,
            "msg": msg,
            **fields,
        }
        line = json.dumps(record, separators=(",", ":"))
        with self._write_lock:
            try:
                self._stream.write(line + "\n")
                self._stream.flush()
            except (OSError, ValueError):
                pass  # a closed stdout (e.g. a dead pipe) must not fail requests
        if self.loki_url:
            metadata = {key: str(fields[key]) for key in STRUCTURED_METADATA if fields.get(key)}
            self._logs.append((service, now_ns, line, metadata))

    def span(self, span: Span) -> None:
        """Queue a finished span for export."""
        if self.tempo_url:
            self._spans.append(span)

    def start(self) -> None:
        """Start the background exporter (a no-op when nothing is configured)."""
        if (self.loki_url or self.tempo_url) and self._thread is None:
            self._thread = threading.Thread(target=self._run, name="telemetry-export", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        """Flush what is buffered and stop the exporter."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self.flush()

    def _run(self) -> None:
        while not self._stop.wait(FLUSH_INTERVAL_S):
            self.flush()

    def flush(self) -> None:
        """Send buffered logs and spans now."""
        logs = _drain(self._logs)
        if logs:
            self._post(f"{self.loki_url}/loki/api/v1/push", encode_loki(logs), "Loki")
        spans = _drain(self._spans)
        if spans:
            self._post(f"{self.tempo_url}/v1/traces", encode_otlp(spans), "Tempo")

    def _post(self, url: str, body: dict, backend: str) -> None:
        try:
            response = self._session.post(url, json=body, timeout=(1, 3))
            if response.status_code >= 300:
                self._complain(backend, f"{backend} push returned {response.status_code}: "
                                        f"{response.text[:200]}")
        except Exception as exc:  # noqa: BLE001 - any failure here must stay contained
            self._complain(backend, f"{backend} push failed: {exc}")

    def _complain(self, backend: str, message: str) -> None:
        # Once per 30 s per backend: a down backend would otherwise flood stderr every second.
        now = time.monotonic()
        if now - self._last_complaint.get(backend, -1e9) >= 30:
            self._last_complaint[backend] = now
            print(f"demo telemetry: {message}", file=sys.stderr, flush=True)


def _drain(buffer: deque) -> list:
    items = []
    while True:
        try:
            items.append(buffer.popleft())
        except IndexError:
            return items
