"""Client for the Prometheus HTTP API (and compatible APIs: Mimir, Thanos, VictoriaMetrics).

Queries are sent as form-encoded POSTs, like Grafana does, so long PromQL does
not hit URL length limits; they are read-only and therefore retried.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Iterable, Mapping, Sequence

import requests

from .base import HttpClient
from .timeutil import to_unix_seconds
from .config import get_setting, http_client_kwargs
from .errors import KIND_NOT_FOUND, PrometheusError

TimeLike = datetime | float | int | str

# Fixed evaluation time for the validate() fallback: at the Unix epoch there is
# no data, so evaluating an expression is nearly free but still fully parsed.
_VALIDATE_AT = "0"


@dataclass(slots=True)
class Sample:
    """One instant-vector element (or a scalar when ``labels`` is empty)."""

    labels: dict[str, str]
    timestamp: float
    value: float
    histogram: dict[str, Any] | None = None  # native histogram, value is NaN then


@dataclass(slots=True)
class Series:
    """One range-vector (matrix) element."""

    labels: dict[str, str]
    timestamps: list[float]
    values: list[float]
    histograms: list[tuple[float, dict[str, Any]]] | None = None


@dataclass(slots=True)
class QueryResult:
    """Parsed ``data`` of a query response plus the envelope's warnings/infos.

    ``result_type`` is "vector" (``samples``), "matrix" (``series``),
    "scalar" (``scalar``) or "string" (``string``).
    """

    result_type: str
    samples: list[Sample] = field(default_factory=list)
    series: list[Series] = field(default_factory=list)
    scalar: Sample | None = None
    string: str | None = None
    warnings: list[str] = field(default_factory=list)
    infos: list[str] = field(default_factory=list)


def parse_value(raw: Any) -> float:
    """Prometheus sends sample values as strings so NaN/+Inf/-Inf survive JSON."""
    try:
        return float(raw)
    except (TypeError, ValueError):
        return math.nan


def _step_seconds(step: float | int | timedelta | str) -> str:
    if isinstance(step, timedelta):
        return f"{step.total_seconds():g}"
    if isinstance(step, (int, float)):
        return f"{float(step):g}"
    return str(step)  # a Prometheus duration such as "15s" or "1m"


def _format_time(value: TimeLike) -> str:
    if isinstance(value, str) and not value.replace(".", "", 1).isdigit():
        return value  # RFC3339 passes through untouched
    return f"{to_unix_seconds(value):.3f}"


class PrometheusClient(HttpClient):
    """Prometheus-compatible query API client.

    For Mimir use ``url="http://mimir:8080", path_prefix="/prometheus"`` and a
    ``tenant``; for Thanos Query the plain URL.
    """

    source = "prometheus"
    error_cls = PrometheusError
    url_setting = "PROMETHEUS_URL"

    def __init__(self, url: str | None = "http://127.0.0.1:9090", *, compress_range: bool = False,
                 **kwargs: Any) -> None:
        super().__init__(url, **kwargs)
        self._format_query_supported: bool | None = None
        # Range answers are large (~100 KB for 10 series x 361 points) and gzipping them was about
        # half of an anomaly rule's cost (bench/detect_cycle.py --profile). On loopback or a LAN an
        # uncompressed answer is cheaper; over a slow link set PROMETHEUS_COMPRESSION=true.
        self._range_headers = None if compress_range else {"Accept-Encoding": "identity"}

    @classmethod
    def from_settings(cls, settings: Any = None) -> "PrometheusClient":
        """Build a client from Django settings (``PROMETHEUS_URL``, ``PROMETHEUS_TOKEN``...)."""
        return cls(**http_client_kwargs("PROMETHEUS", settings, default_url="http://127.0.0.1:9090"),
                   compress_range=bool(get_setting("PROMETHEUS_COMPRESSION", False, settings)))

    # -- queries -------------------------------------------------------------

    def query(self, promql: str, time: TimeLike | None = None, *, timeout: str | None = None) -> QueryResult:
        """Instant query (``/api/v1/query``) evaluated at ``time`` (default: now)."""
        form = {"query": promql}
        if time is not None:
            form["time"] = _format_time(time)
        if timeout:
            form["timeout"] = timeout
        return self._parse_query(self._post_envelope("/api/v1/query", form))

    def query_range(
        self,
        promql: str,
        start: TimeLike,
        end: TimeLike,
        step: float | int | timedelta | str,
        *,
        timeout: str | None = None,
    ) -> QueryResult:
        """Range query (``/api/v1/query_range``); ``step`` in seconds, timedelta or "15s"."""
        form = {
            "query": promql,
            "start": _format_time(start),
            "end": _format_time(end),
            "step": _step_seconds(step),
        }
        if timeout:
            form["timeout"] = timeout
        return self._parse_query(self._post_envelope("/api/v1/query_range", form, headers=self._range_headers))

    def series(
        self, match: str | Sequence[str], start: TimeLike | None = None, end: TimeLike | None = None
    ) -> list[dict[str, str]]:
        """Label sets of the series matching any of the ``match[]`` selectors."""
        form: list[tuple[str, str]] = [("match[]", m) for m in _as_list(match)]
        form += _range_params(start, end)
        data = self._post_api("/api/v1/series", form)
        if not isinstance(data, list):
            raise self._bad_response("series data is not a list")
        return data

    def label_names(self, match: str | Sequence[str] | None = None) -> list[str]:
        """All label names (optionally restricted to series matching ``match``)."""
        params = [("match[]", m) for m in _as_list(match)]
        return self._get_api("/api/v1/labels", params)

    def label_values(
        self,
        label: str,
        match: str | Sequence[str] | None = None,
        start: TimeLike | None = None,
        end: TimeLike | None = None,
    ) -> list[str]:
        """Values of ``label`` (``/api/v1/label/<label>/values``)."""
        params = [("match[]", m) for m in _as_list(match)] + _range_params(start, end)
        path = f"/api/v1/label/{requests.utils.quote(label, safe='')}/values"
        return self._get_api(path, params)

    def validate(self, promql: str) -> None:
        """Check that ``promql`` parses; raise ``PrometheusError`` with Prometheus's text.

        Uses ``/api/v1/format_query`` (parse only, no evaluation) and falls back
        to an instant query at the Unix epoch for backends without it (Mimir,
        older Prometheus), remembering which one works.
        """
        if self._format_query_supported is not False:
            try:
                self._post_api("/api/v1/format_query", {"query": promql})
                self._format_query_supported = True
                return None
            except PrometheusError as exc:
                if exc.kind != KIND_NOT_FOUND or exc.status not in (404, 405):
                    raise
                self._format_query_supported = False
        self.query(promql, time=_VALIDATE_AT)
        return None

    # -- plumbing --------------------------------------------------------------

    def _post_api(self, path: str, form: Any) -> Any:
        return self._post_envelope(path, form).get("data")

    def _post_envelope(self, path: str, form: Any, headers: Mapping[str, str] | None = None) -> dict[str, Any]:
        return self._unwrap(self._request("POST", path, data=form, idempotent=True, headers=headers))

    def _get_api(self, path: str, params: Any) -> Any:
        return self._unwrap(self._request("GET", path, params=params or None)).get("data")

    def _unwrap(self, resp: requests.Response) -> dict[str, Any]:
        """Check the ``{status, data, errorType, error, ...}`` envelope and return it."""
        body = self._json(resp)
        if not isinstance(body, dict) or "status" not in body:
            raise self._bad_response("missing Prometheus envelope")
        if body["status"] != "success":
            raise self._error(
                str(body.get("error", "unknown error")),
                status=resp.status_code, kind=body.get("errorType") or "error",
            )
        return body

    def _parse_error_body(self, resp: requests.Response) -> tuple[str | None, str]:
        # Prometheus errors are JSON envelopes; proxies in front may send HTML/text.
        try:
            body = resp.json()
        except ValueError:
            return super()._parse_error_body(resp)
        if isinstance(body, dict) and body.get("error"):
            return body.get("errorType") or None, str(body["error"])
        return super()._parse_error_body(resp)

    def _parse_query(self, envelope: dict[str, Any]) -> QueryResult:
        data = envelope.get("data")
        if not isinstance(data, dict) or "resultType" not in data:
            raise self._bad_response("query data has no resultType")
        rtype, raw = data["resultType"], data.get("result")
        out = QueryResult(
            result_type=rtype,
            warnings=list(envelope.get("warnings") or []),
            infos=list(envelope.get("infos") or []),
        )
        try:
            if rtype == "vector":
                out.samples = [_sample(item) for item in raw]
            elif rtype == "matrix":
                out.series = [_series(item) for item in raw]
            elif rtype == "scalar":
                out.scalar = Sample({}, float(raw[0]), parse_value(raw[1]))
            elif rtype == "string":
                out.string = str(raw[1])
            else:
                raise self._bad_response(f"unknown resultType {rtype!r}")
        except (TypeError, KeyError, IndexError, ValueError) as exc:
            raise self._bad_response(f"malformed {rtype} result ({type(exc).__name__})") from None
        return out


def _sample(item: dict[str, Any]) -> Sample:
    labels = item.get("metric") or {}
    if "value" in item:
        ts, raw = item["value"]
        return Sample(labels, float(ts), parse_value(raw))
    ts, hist = item["histogram"]
    return Sample(labels, float(ts), math.nan, hist)


def _series(item: dict[str, Any]) -> Series:
    values = item.get("values") or []
    series = Series(
        item.get("metric") or {},
        [float(ts) for ts, _ in values],
        [parse_value(v) for _, v in values],
    )
    if item.get("histograms"):
        series.histograms = [(float(ts), h) for ts, h in item["histograms"]]
    return series


def _as_list(value: str | Iterable[str] | None) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    return list(value)


def _range_params(start: TimeLike | None, end: TimeLike | None) -> list[tuple[str, str]]:
    params = []
    if start is not None:
        params.append(("start", _format_time(start)))
    if end is not None:
        params.append(("end", _format_time(end)))
    return params
