"""Read a rule's source and turn the answer into observations: one per series, active or not.

Evaluation never writes; `detection.services` applies the observations to alert state. A source
error propagates as a TelemetryError, which the caller records as the rule's `unknown` health.
"""
from __future__ import annotations

import math
import operator
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import numpy as np

from reliability_studio.telemetry.errors import TelemetryError
from reliability_studio.telemetry.kubernetes import KubernetesClient
from reliability_studio.telemetry.loki import LokiClient
from reliability_studio.telemetry.prometheus import PrometheusClient

from . import anomaly
from .models import Comparator, DetectionRule, KubernetesCondition, RuleKind

COMPARE = {
    Comparator.GT: operator.gt,
    Comparator.GTE: operator.ge,
    Comparator.LT: operator.lt,
    Comparator.LTE: operator.le,
    Comparator.EQ: operator.eq,
    Comparator.NE: operator.ne,
}
# Anomaly rules read their baseline at this many points at most (the step adapts to the window).
MAX_POINTS = 720


@dataclass
class Observation:
    labels: dict[str, str]
    value: float | None
    active: bool
    detail: dict = field(default_factory=dict)


def evaluate(rule: DetectionRule, now: datetime) -> list[Observation]:
    """Observations of every series the rule's query returns at `now`."""
    return {
        RuleKind.THRESHOLD: _threshold,
        RuleKind.ANOMALY: _anomaly,
        RuleKind.LOG_PATTERN: _log_pattern,
        RuleKind.KUBERNETES: _kubernetes,
    }[rule.kind](rule, now)


def _compare(rule: DetectionRule, value: float) -> bool:
    return not math.isnan(value) and COMPARE[rule.comparator](value, rule.threshold)


def _threshold(rule: DetectionRule, now: datetime) -> list[Observation]:
    result = PrometheusClient.shared().query(rule.query, time=now)
    samples = result.samples or ([result.scalar] if result.scalar else [])
    return [Observation(s.labels, s.value, _compare(rule, s.value)) for s in samples]


def _anomaly(rule: DetectionRule, now: datetime) -> list[Observation]:
    window = rule.baseline_window_seconds
    step = max(rule.evaluation_interval_seconds, math.ceil(window / MAX_POINTS))
    result = PrometheusClient.shared().query_range(rule.query, now - timedelta(seconds=window), now, step)
    observations = []
    # All series of one rule in one call: series sharing timestamps are analysed together (cheaper).
    verdicts = anomaly.evaluate_latest_many(anomaly.make_detector(rule.anomaly_method), [
        (np.asarray(series.timestamps, dtype=float), np.asarray(series.values, dtype=float))
        for series in result.series
    ])
    for series, verdict in zip(result.series, verdicts):
        detail = {"method": verdict.method, "score": _finite(verdict.score), "expected": _finite(verdict.expected),
                  "status": verdict.status}
        value = series.values[-1] if series.values else None
        observations.append(Observation(series.labels, value, bool(verdict.anomalous), detail))
    return observations


def _finite(value: float) -> float | None:
    return None if value is None or not math.isfinite(value) else round(float(value), 6)


def _log_pattern(rule: DetectionRule, now: datetime) -> list[Observation]:
    result = LokiClient.shared().query(rule.query, time=now)
    return [Observation(s.labels, s.value, _compare(rule, s.value)) for s in result.samples]


def _kubernetes(rule: DetectionRule, now: datetime) -> list[Observation]:
    client = KubernetesClient.shared()
    namespace = rule.kubernetes_namespace or None
    selector = rule.kubernetes_selector or None
    condition = rule.kubernetes_condition
    if condition == KubernetesCondition.UNAVAILABLE:
        observations = []
        for deployment in client.deployments(namespace):
            if selector and not _selector_matches(selector, deployment.selector):
                continue
            missing = deployment.replicas - deployment.available_replicas
            labels = {"namespace": deployment.namespace, "deployment": deployment.name}
            observations.append(Observation(labels, float(missing), missing > (rule.threshold or 0)))
        return observations
    observations = []
    for pod in client.pods(namespace, selector):
        for container in pod.containers:
            labels = {"namespace": pod.namespace, "pod": pod.name, "container": container.name}
            if pod.labels.get("app.kubernetes.io/name") or pod.labels.get("app"):
                labels["app"] = pod.labels.get("app.kubernetes.io/name") or pod.labels["app"]
            if condition == KubernetesCondition.CRASH_LOOP:
                active = container.state == "waiting" and container.reason == "CrashLoopBackOff"
            elif condition == KubernetesCondition.OOM_KILLED:
                active = container.last_termination_reason == "OOMKilled" or container.reason == "OOMKilled"
            else:
                active = container.restart_count > (rule.threshold or 0)
            detail = {"reason": container.reason, "last_termination": container.last_termination_reason,
                      "exit_code": container.last_exit_code, "restarts": container.restart_count}
            observations.append(Observation(labels, float(container.restart_count), active, detail))
    return observations


def _selector_matches(selector: str, labels: dict[str, str]) -> bool:
    wanted = dict(part.split("=", 1) for part in selector.split(",") if "=" in part)
    return all(labels.get(k.strip()) == v.strip() for k, v in wanted.items())


def validate_rule_source(rule: DetectionRule) -> None:
    """Ask the rule's source whether its query is valid; raise ValueError with the source's message."""
    try:
        if rule.kind in (RuleKind.THRESHOLD, RuleKind.ANOMALY):
            PrometheusClient.shared().validate(rule.query)
        elif rule.kind == RuleKind.LOG_PATTERN:
            LokiClient.shared().query(rule.query, limit=1)
    except TelemetryError as exc:
        raise ValueError(str(exc)) from None
