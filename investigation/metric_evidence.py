"""Live metric evidence: the series behind an incident's PromQL alerts, read from Prometheus.

The evidence region (investigation/panels.py) shows these charts for an incident that has never
been investigated; once a run exists, only its stored snapshots (collectors/metrics.py) are shown.

For each distinct threshold / anomaly rule that fed the incident (at most `MAX_RULES`), the rule's
query is run as-is over the incident window (15 minutes before it started until 5 minutes after
it resolved, or now) and only the series whose labels match one of the incident's alerts of that
rule are kept. The baseline is the same window one day earlier when Prometheus has data there;
otherwise the 15 minutes before the incident are shaded as the "before" part. Nothing is invented:
a missing point stays null.

Read-only. A failing Prometheus raises TelemetryError (the region shows "Prometheus unavailable");
a query Prometheus refuses is reported on its own chart.
"""
from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.utils import timezone

from detection.models import Alert, RuleKind
from incidents.models import Incident
from reliability_studio import grafana_links
from reliability_studio.telemetry.errors import TelemetryError
from reliability_studio.telemetry.prometheus import PrometheusClient, Series

MAX_RULES = 4
MAX_POINTS = 300
MAX_SERIES = 5  # per chart
BEFORE = timedelta(minutes=15)
AFTER = timedelta(minutes=5)
DAY = 86400
# Refusals that concern one query, not the source: shown on that chart, the others still drawn.
QUERY_ERROR_KINDS = {"bad_data", "execution", "not_acceptable"}

THRESHOLD_COLOR = "#fade2a"
BASELINE_COLOR = "#8e8e8e"


def incident_window(incident: Incident, now: datetime | None = None) -> tuple[datetime, datetime]:
    now = now or timezone.now()
    start = incident.started_at - BEFORE
    end = min(incident.resolved_at + AFTER, now) if incident.resolved_at else now
    return start, max(end, start + timedelta(seconds=1))


def _matches(series: Series, label_sets: list[dict]) -> bool:
    labels = series.labels
    return any(all(labels.get(k) == v for k, v in wanted.items() if k != "__name__") for wanted in label_sets)


def _label_text(labels: dict) -> str:
    shown = {k: v for k, v in labels.items() if k != "__name__"}
    return ", ".join(f"{k}={v}" for k, v in sorted(shown.items())) or labels.get("__name__", "value")


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _on_grid(series: Series, start: int, step: int, points: int, shift: int = 0) -> list[float | None]:
    values: list[float | None] = [None] * points
    for ts, value in zip(series.timestamps, series.values):
        index = round((ts + shift - start) / step)
        if 0 <= index < points:
            values[index] = _finite(value)
    return values


def _rule_evidence(client: PrometheusClient, rule, label_sets: list[dict], service: str,
                   start: int, end: int, step: int, incident_start: float) -> dict:
    title = f"{rule.name} · {service}" if service else rule.name
    item = {"title": title, "query": rule.query, "rule": rule, "chart": None, "error": "", "refused": False, "baseline": "",
            "explore_url": _explore(rule.query, start, end)}
    try:
        current = client.query_range(rule.query, start, end, step)
    except TelemetryError as exc:
        if exc.kind not in QUERY_ERROR_KINDS:
            raise
        item["error"], item["refused"] = f"Prometheus refused the query: {exc.message}", True
        return item
    matched = [s for s in current.series if _matches(s, label_sets)][:MAX_SERIES]
    if not matched:
        item["error"] = "Prometheus has no series matching this alert's labels in the incident window."
        return item
    points = (end - start) // step + 1
    x = [start + i * step for i in range(points)]
    series = [{"label": _label_text(s.labels), "values": _on_grid(s, start, step, points)} for s in matched]

    # Baseline: the same window a day earlier, only where Prometheus has data for these series.
    earlier = client.query_range(rule.query, start - DAY, end - DAY, step)
    wanted = [s.labels for s in matched]
    baseline = []
    for s in earlier.series:
        if _matches(s, wanted):
            values = _on_grid(s, start, step, points, shift=DAY)
            if any(v is not None for v in values):
                baseline.append({"label": f"{_label_text(s.labels)} (1 day earlier)", "values": values,
                                 "dash": True, "color": BASELINE_COLOR})
    spec = {"x": x, "series": series + baseline[:MAX_SERIES]}
    if baseline:
        item["baseline"] = "Baseline (dashed): the same window one day earlier."
    else:
        spec["shade"] = [start, incident_start]
        item["baseline"] = ("No data one day earlier; the shaded part is the 15 minutes before the incident "
                            "started, as the baseline.")
    if rule.threshold is not None:
        spec["series"].append({"label": f"threshold {rule.comparator} {rule.threshold:g}",
                               "values": [rule.threshold] * points, "dash": True, "color": THRESHOLD_COLOR})
    item["chart"] = spec
    item["chart_json"] = json.dumps(spec, separators=(",", ":"), allow_nan=False)
    return item


def _explore(query: str, start: int, end: int) -> str:
    if not settings.GRAFANA_URL:
        return ""
    pane = grafana_links.prometheus_pane(query, datetime.fromtimestamp(start, tz=UTC),
                                         datetime.fromtimestamp(end, tz=UTC))
    return grafana_links.explore_url(settings.GRAFANA_URL, {"evidence": pane})


def metric_evidence(incident: Incident, now: datetime | None = None) -> list[dict]:
    """One chart per distinct PromQL rule behind the incident's alerts (at most MAX_RULES).

    Each item: title, query, rule, chart (the `data-chart` spec, None when there is nothing to
    draw), chart_json, baseline (legend text: which baseline is shown), error (this chart only;
    refused when Prometheus rejected the query rather than having no matching series),
    explore_url ("" when GRAFANA_URL is not set). Raises TelemetryError when Prometheus itself
    fails. No PromQL alerts: an empty list, and no query at all.
    """
    alerts = (Alert.objects.filter(incident=incident, rule__kind__in=[RuleKind.THRESHOLD, RuleKind.ANOMALY])
              .exclude(rule__query="").select_related("rule__service", "service").order_by("pk"))
    rules: dict[int, tuple] = {}
    for alert in alerts:
        if alert.rule_id not in rules:
            if len(rules) == MAX_RULES:
                continue
            service = alert.service or alert.rule.service
            rules[alert.rule_id] = (alert.rule, [], service.slug if service else "")
        rules[alert.rule_id][1].append(alert.labels)
    if not rules:
        return []
    start_dt, end_dt = incident_window(incident, now)
    start, end = math.floor(start_dt.timestamp()), math.ceil(end_dt.timestamp())
    step = max(1, math.ceil((end - start) / (MAX_POINTS - 1)))
    client = PrometheusClient.shared()
    return [_rule_evidence(client, rule, label_sets, service, start, end, step, incident.started_at.timestamp())
            for rule, label_sets, service in rules.values()]
