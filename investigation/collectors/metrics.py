"""Metrics collector: request rate, error ratio and latency of every service in scope, from Prometheus.

Also scrape health (`up`, as "availability"), so a crashed service shows at once. Declarative: the
queries are settings (INVESTIGATION_QUERY_*) with `$selector` (the catalog's
`prometheus.selector` for the service, investigation/scope.py) and `$rate` placeholders, so a real
estate whose metrics are named differently needs configuration, not code. Defaults fit the demo
shop (http_requests_total{service,route,code}, http_request_duration_seconds_bucket{service,route,le}).

Per series the snapshot holds the points themselves on one grid (baseline + incident window, at most
INVESTIGATION_MAX_POINTS), the same window a day earlier when Prometheus has data there, the
baseline median, the robust change score and the change-point time. Queries run in parallel and stop
at the collector's deadline; what did not answer in time becomes a "timed out" item, what failed an
"unavailable" one, so the other services' evidence is kept.
"""
from __future__ import annotations

import math
import time
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass
from datetime import UTC, datetime
from string import Template

import numpy as np
from django.conf import settings

from reliability_studio import grafana_links
from reliability_studio.telemetry.errors import KIND_CIRCUIT_OPEN, KIND_TIMEOUT, TelemetryError
from reliability_studio.telemetry.prometheus import PrometheusClient

from ..models import EvidenceKind, EvidenceStatus
from ..rca.ranking import robust_scale
from .base import CaseInputs, EvidenceItem, Scope

DAY = 86_400
CHANGE_Z = 4.0  # robust z above which a point counts as changed
SUSTAINED = 2  # consecutive points, so one noisy scrape is not a change point
# (metric name in the case, setting, label, "bad" direction: +1 up is bad, -1 down is bad, unit)
METRICS = (
    ("error_ratio", "INVESTIGATION_QUERY_ERROR_RATIO", "error ratio", +1, "ratio"),
    ("latency_p95", "INVESTIGATION_QUERY_LATENCY", "p95 latency", +1, "seconds"),
    ("request_rate", "INVESTIGATION_QUERY_REQUEST_RATE", "request rate", -1, "rps"),
    # Scrape health: a crashed service stops answering its scrapes (up 1 → 0) before its rates go
    # missing long enough to count. Needs `service` on the target labels (deploy/prometheus does).
    ("availability", "INVESTIGATION_QUERY_AVAILABILITY", "availability (up)", -1, "up"),
)
QUERY_ERROR_KINDS = {"bad_data", "execution", "not_acceptable"}  # the query is at fault, not the source


def render(template: str, **values: str) -> str:
    """`$selector` / `$rate` / `$window` substitution; unknown `$names` are left as they are."""
    return Template(template).safe_substitute(**values)


@dataclass(frozen=True)
class Grid:
    start: int
    step: int
    points: int

    @property
    def times(self) -> np.ndarray:
        return self.start + self.step * np.arange(self.points, dtype=float)

    @property
    def end(self) -> int:
        return self.start + self.step * (self.points - 1)

    @classmethod
    def for_scope(cls, scope: Scope) -> "Grid":
        start = math.floor(scope.baseline_start.timestamp())
        end = math.ceil(scope.window_end.timestamp())
        max_points = max(10, int(settings.INVESTIGATION_MAX_POINTS))
        step = max(int(settings.INVESTIGATION_MIN_STEP_SECONDS), math.ceil((end - start) / (max_points - 1)), 1)
        return cls(start, step, (end - start) // step + 1)


def _on_grid(series_list, grid: Grid, shift: int = 0) -> np.ndarray:
    values = np.full(grid.points, np.nan)
    for series in series_list:
        for ts, value in zip(series.timestamps, series.values):
            index = round((ts + shift - grid.start) / grid.step)
            if 0 <= index < grid.points and math.isfinite(value):
                values[index] = value
    return values


def change_score(values: np.ndarray, times: np.ndarray, baseline_end: float, direction: int,
                 detection_time: float | None = None) -> dict:
    """Robust change of a series against its baseline: median/IQR z-score (the ranking's scale) read
    in the bad direction, its peak, and the first sustained exceedance (the change point).

    Without data before `baseline_end` (a young Prometheus, a new service) the baseline is what the
    ranking would use: the data before the detection time minus half the data's span (≤ 5 min)."""
    finite = np.isfinite(values)
    base = values[(times < baseline_end) & finite]
    if base.size < 3 and detection_time is not None and finite.any():
        first = float(times[int(np.argmax(finite))])
        baseline_end = detection_time - min(300.0, 0.5 * max(0.0, detection_time - first))
        base = values[(times < baseline_end) & finite]
    window_mask = times >= baseline_end
    window = values[window_mask]
    out = {"baseline_median": None, "window_peak": None, "score": 0.0, "change_point": None, "baseline_points": int(base.size)}
    finite = window[np.isfinite(window)]
    if finite.size:
        out["window_peak"] = float(np.max(finite) if direction > 0 else np.min(finite))
    if base.size < 3 or not finite.size:
        return out
    median, scale = robust_scale(base)
    out["baseline_median"] = median
    z = direction * (window - median) / scale
    z = np.where(np.isfinite(z), z, 0.0)
    out["score"] = round(float(min(np.max(z), 1000.0)), 2) if z.size else 0.0
    above = z >= CHANGE_Z
    window_times = times[window_mask]
    for i in range(len(above) - SUSTAINED + 1):
        if above[i:i + SUSTAINED].all():
            out["change_point"] = float(window_times[i])
            break
    else:
        if above.any():
            out["change_point"] = float(window_times[int(np.argmax(above))])
    return out


def _fmt(value: float | None, unit: str) -> str:
    if value is None:
        return "no data"
    if unit == "ratio":
        return f"{value * 100:.1f} %"
    if unit == "up":
        return f"{value:g}"
    if unit == "seconds":
        return f"{value * 1000:.0f} ms" if value < 1 else f"{value:.2f} s"
    return f"{value:.1f}/s"


def _explore(query: str, start: float, end: float) -> str:
    if not settings.GRAFANA_URL:
        return ""
    pane = grafana_links.prometheus_pane(query, datetime.fromtimestamp(start, tz=UTC),
                                         datetime.fromtimestamp(end, tz=UTC))
    return grafana_links.explore_url(settings.GRAFANA_URL, {"evidence": pane})


def _bounded(values: np.ndarray) -> list[float | None]:
    return [None if not math.isfinite(v) else round(float(v), 6) for v in values]


class MetricsCollector:
    step = "metrics"
    kind = EvidenceKind.METRICS
    source = "prometheus"
    max_workers = 8

    def configured(self) -> bool:
        return bool(settings.PROMETHEUS_URL)

    def not_configured_message(self) -> str:
        return "Prometheus is not configured (PROMETHEUS_URL is empty)."

    def collect(self, scope: Scope, deadline: float) -> tuple[list[EvidenceItem], CaseInputs]:
        client = PrometheusClient.shared()
        grid = Grid.for_scope(scope)
        window_seconds = max(1, math.ceil(scope.window_seconds))
        rate = settings.INVESTIGATION_RATE_WINDOW
        jobs = {}  # future -> (service, metric spec, query, which)
        items: list[EvidenceItem] = []
        inputs = CaseInputs(times=grid.times)
        pool = ThreadPoolExecutor(max_workers=self.max_workers, thread_name_prefix="rs-metrics")
        try:
            for service in scope.services:
                selector = scope.selectors[service]["prometheus.selector"]
                for spec in METRICS:
                    query = render(getattr(settings, spec[1]), selector=selector, rate=rate)
                    jobs[pool.submit(client.query_range, query, grid.start, grid.end, grid.step)] = (service, spec, query, "now")
                    if scope.day_before:
                        jobs[pool.submit(client.query_range, query, grid.start - DAY, grid.end - DAY, grid.step)] = (
                            service, spec, query, "day_before")
                failed_query = render(settings.INVESTIGATION_QUERY_FAILED_REQUESTS, selector=selector, rate=rate,
                                      window=f"{window_seconds}s")
                jobs[pool.submit(client.query, failed_query, scope.window_end.timestamp())] = (
                    service, None, failed_query, "failed")
            results: dict[tuple, object] = {}
            pending = set(jobs)
            while pending:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                done, pending = wait(pending, timeout=remaining, return_when=FIRST_COMPLETED)
                for future in done:
                    service, spec, query, which = jobs[future]
                    key = (service, spec[0] if spec else "failed_requests", which)
                    try:
                        results[key] = future.result()
                    except TelemetryError as exc:
                        results[key] = exc
        finally:
            pool.shutdown(wait=False, cancel_futures=True)

        errors = [r for r in results.values() if isinstance(r, TelemetryError)]
        if results and len(errors) == len(results) and not pending:
            # The source as a whole failed: one "unavailable" item says so, with the real cause
            # rather than the circuit breaker that opened because of it.
            raise sorted(errors, key=lambda e: e.kind == KIND_CIRCUIT_OPEN)[0]
        if not results and pending:
            raise TelemetryError(f"Prometheus did not answer any of {len(jobs)} queries before the deadline",
                                 kind=KIND_TIMEOUT, source="prometheus")

        baseline_end = scope.window_start.timestamp()
        for service in scope.services:
            selector = scope.selectors[service]["prometheus.selector"]
            for name, setting, label, direction, unit in METRICS:
                query = render(getattr(settings, setting), selector=selector, rate=rate)
                result = results.get((service, name, "now"))
                explore = _explore(query, grid.start, grid.end)
                if result is None:
                    items.append(EvidenceItem(self.kind, self.source, service, query, {"metric": name},
                                              f"{service} {label}: Prometheus did not answer before the deadline",
                                              status=EvidenceStatus.TIMED_OUT, explore_url=explore))
                    continue
                if isinstance(result, TelemetryError):
                    refused = result.kind in QUERY_ERROR_KINDS
                    items.append(EvidenceItem(self.kind, self.source, service, query,
                                              {"metric": name, "error": result.message, "error_kind": result.kind},
                                              f"{service} {label}: " + ("Prometheus refused the query: " if refused
                                                                       else "Prometheus failed: ") + result.message[:300],
                                              status=EvidenceStatus.UNAVAILABLE, explore_url=explore))
                    continue
                values = _on_grid(result.series, grid)
                if not np.isfinite(values).any():
                    items.append(EvidenceItem(self.kind, self.source, service, query, {"metric": name, "series": 0},
                                              f"{service} {label}: no data in the window",
                                              status=EvidenceStatus.NO_DATA, explore_url=explore))
                    continue
                inputs.series.setdefault(service, {})[name] = values
                change = change_score(values, grid.times, baseline_end, direction, scope.detection_time.timestamp())
                snapshot = {"metric": name, "unit": unit, "start": grid.start, "step": grid.step,
                            "values": _bounded(values), "series": len(result.series), **change}
                earlier = results.get((service, name, "day_before"))
                if earlier is not None and not isinstance(earlier, TelemetryError):
                    shifted = _on_grid(earlier.series, grid, shift=DAY)
                    if np.isfinite(shifted).any():
                        snapshot["day_before"] = _bounded(shifted)
                anomaly_start = (datetime.fromtimestamp(change["change_point"], tz=UTC)
                                 if change["change_point"] is not None else None)
                items.append(EvidenceItem(
                    self.kind, self.source, service, query, snapshot,
                    _finding(service, label, unit, change, anomaly_start), score=change["score"],
                    explore_url=explore, anomaly_start=anomaly_start))
            failed_query = render(settings.INVESTIGATION_QUERY_FAILED_REQUESTS, selector=selector, rate=rate,
                                  window=f"{window_seconds}s")
            failed = results.get((service, "failed_requests", "failed"))
            if failed is not None and not isinstance(failed, TelemetryError):
                total = sum(s.value for s in failed.samples if math.isfinite(s.value))
                items.append(EvidenceItem(
                    self.kind, self.source, service, failed_query,
                    {"metric": "failed_requests", "value": round(total, 1), "window_seconds": window_seconds,
                     "at": scope.window_end.timestamp()},
                    f"{service}: {total:,.0f} failed requests during the incident window", score=0.0,
                    explore_url=_explore(failed_query, scope.window_start.timestamp(), scope.window_end.timestamp())))
        return items, inputs


def _finding(service: str, label: str, unit: str, change: dict, anomaly_start: datetime | None) -> str:
    before, peak = change["baseline_median"], change["window_peak"]
    if before is None:
        return f"{service} {label} peaked at {_fmt(peak, unit)} (no baseline to compare with)"
    text = f"{service} {label} {_fmt(before, unit)} → {_fmt(peak, unit)} (score {change['score']:g})"
    if anomaly_start is not None:
        text += f", changed at {anomaly_start:%H:%M:%S} UTC"
    else:
        text += ", no sustained change"
    return text
