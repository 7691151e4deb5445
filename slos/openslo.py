"""OpenSLO v1 (`openslo/v1`, kind SLO) export and import.

Export writes a standard ratioMetric SLI (Prometheus counter queries) and keeps what OpenSLO
has no field for (SLI kind, selector, latency threshold, owner, policy) in metadata.annotations
under `reliability-studio/`, so export → import restores every field. Import accepts exactly the
subset this product can honour; anything else is refused with its path named, never dropped.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass

import yaml
from django.core.exceptions import ValidationError

from incidents.models import Service

from . import promql
from .models import DEFAULT_ERROR_MATCHER, SLO, SLIKind

API_VERSION = "openslo/v1"
PREFIX = "reliability-studio/"
ANNOTATIONS = ("sli-kind", "selector", "metric", "error-matcher", "latency-threshold-seconds", "owner",
               "good-query", "total-query", "severity-policy", "enabled")
SELECTOR = re.compile(r"\s*[a-zA-Z_:][a-zA-Z0-9_:]*\s*(\{.*\})?\s*", re.S)
DURATION = re.compile(r"(\d+)([dw])")

ALLOWED = {
    "": {"apiVersion", "kind", "metadata", "spec"},
    "metadata": {"name", "displayName", "labels", "annotations"},
    "spec": {"description", "service", "indicator", "timeWindow", "budgetingMethod", "objectives", "alertPolicies"},
    "spec.indicator": {"metadata", "spec"},
    "spec.indicator.metadata": {"name", "displayName"},
    "spec.indicator.spec": {"ratioMetric"},
    "spec.indicator.spec.ratioMetric": {"counter", "good", "bad", "total"},
    "metricSource": {"type", "spec"},
    "metricSource.spec": {"query"},
    "timeWindow": {"duration", "isRolling"},
    "objective": {"displayName", "target", "targetPercent"},
}


class OpenSLOError(ValueError):
    """A document this product cannot import; the message names the field(s)."""


def _number(value: float) -> float | int:
    rounded = round(value, 10)
    return int(rounded) if rounded == int(rounded) else rounded


# --- export -----------------------------------------------------------------------------------

def export_slo(slo: SLO) -> dict:
    """The OpenSLO v1 document of one SLO."""
    if slo.sli_kind == SLIKind.CUSTOM:
        ratio = {"good": slo.good_query, "total": slo.total_query}
        queries = {"good": promql.count_queries(slo, "$window")["good"], "total": promql.count_queries(slo, "$window")["total"]}
        ratio_metric = {"counter": False}
        ratio_metric.update({part: {"metricSource": {"type": "Prometheus", "spec": {"query": q}}}
                             for part, q in queries.items()})
    else:
        ratio_metric = {"counter": True}
        ratio_metric.update({part: {"metricSource": {"type": "Prometheus", "spec": {"query": q}}}
                             for part, q in promql.slo_selectors(slo).items()})
        ratio = {}
    annotations = {
        f"{PREFIX}sli-kind": slo.sli_kind,
        f"{PREFIX}enabled": "true" if slo.enabled else "false",
    }
    if slo.sli_kind != SLIKind.CUSTOM:
        annotations[f"{PREFIX}selector"] = slo.selector
        if slo.metric:
            annotations[f"{PREFIX}metric"] = slo.metric
    if slo.sli_kind == SLIKind.AVAILABILITY:
        annotations[f"{PREFIX}error-matcher"] = slo.error_matcher
    if slo.sli_kind == SLIKind.LATENCY:
        annotations[f"{PREFIX}latency-threshold-seconds"] = repr(float(slo.latency_threshold_seconds))
    if ratio:
        annotations[f"{PREFIX}good-query"] = ratio["good"]
        annotations[f"{PREFIX}total-query"] = ratio["total"]
    if slo.owner:
        annotations[f"{PREFIX}owner"] = slo.owner
    if slo.severity_policy:
        annotations[f"{PREFIX}severity-policy"] = json.dumps(slo.severity_policy, sort_keys=True)
    metadata = {"name": slo.slug, "displayName": slo.name}
    if slo.labels:
        metadata["labels"] = dict(slo.labels)
    metadata["annotations"] = annotations
    spec = {
        "description": slo.description,
        "service": slo.service.slug,
        "indicator": {"metadata": {"name": f"{slo.slug}-sli"}, "spec": {"ratioMetric": ratio_metric}},
        "timeWindow": [{"duration": f"{slo.window_days}d", "isRolling": True}],
        "budgetingMethod": "Occurrences",
        "objectives": [{"displayName": slo.name, "target": _number(slo.objective / 100)}],
    }
    return {"apiVersion": API_VERSION, "kind": "SLO", "metadata": metadata, "spec": spec}


def export_yaml(slos) -> str:
    return yaml.safe_dump_all([export_slo(slo) for slo in slos], sort_keys=False, allow_unicode=True, width=200)


# --- import -----------------------------------------------------------------------------------

@dataclass
class Imported:
    slo: SLO
    created: bool


def _check_keys(node, allowed_key: str, path: str, problems: list[str]) -> dict:
    if node is None:
        return {}
    if not isinstance(node, dict):
        problems.append(f"{path or 'document'}: expected a mapping")
        return {}
    for key in node:
        if key not in ALLOWED[allowed_key]:
            problems.append(f"{path + '.' if path else ''}{key}")
    return node


def _metric_source(node, path: str, problems: list[str]) -> str | None:
    if not isinstance(node, dict) or set(node) != {"metricSource"}:
        if isinstance(node, dict):
            problems.extend(f"{path}.{k}" for k in node if k != "metricSource")
        if not isinstance(node, dict) or "metricSource" not in node:
            problems.append(f"{path}.metricSource (required; metricSourceRef is not supported)")
            return None
    source = _check_keys(node["metricSource"], "metricSource", f"{path}.metricSource", problems)
    kind = str(source.get("type", ""))
    if kind.lower() != "prometheus":
        problems.append(f"{path}.metricSource.type={kind or '(missing)'} (only Prometheus is supported)")
    spec = _check_keys(source.get("spec"), "metricSource.spec", f"{path}.metricSource.spec", problems)
    query = spec.get("query")
    if not isinstance(query, str) or not query.strip():
        problems.append(f"{path}.metricSource.spec.query (required)")
        return None
    return query.strip()


def _window_days(node, problems: list[str]) -> int | None:
    if not isinstance(node, list) or len(node) != 1:
        problems.append("spec.timeWindow (exactly one rolling window is supported)")
        return None
    window = _check_keys(node[0], "timeWindow", "spec.timeWindow[0]", problems)
    if window.get("isRolling") is not True:
        problems.append("spec.timeWindow[0].isRolling=false (calendar windows are not supported)")
    match = DURATION.fullmatch(str(window.get("duration", "")).strip())
    if not match:
        problems.append(f"spec.timeWindow[0].duration={window.get('duration')!r} (use whole days or weeks: 30d, 4w)")
        return None
    return int(match.group(1)) * (7 if match.group(2) == "w" else 1)


def parse_document(doc: dict) -> SLO:
    """One OpenSLO v1 SLO document → an unsaved SLO (OpenSLOError names every unsupported field)."""
    problems: list[str] = []
    doc = _check_keys(doc, "", "", problems)
    if doc.get("apiVersion") != API_VERSION:
        raise OpenSLOError(f"apiVersion must be {API_VERSION} (got {doc.get('apiVersion')!r})")
    if doc.get("kind") != "SLO":
        raise OpenSLOError(f"kind {doc.get('kind')!r} is not supported (only SLO, with an inline indicator)")
    metadata = _check_keys(doc.get("metadata"), "metadata", "metadata", problems)
    spec = _check_keys(doc.get("spec"), "spec", "spec", problems)
    annotations = metadata.get("annotations") or {}
    ours = {}
    for key, value in annotations.items():
        if not str(key).startswith(PREFIX) or str(key)[len(PREFIX):] not in ANNOTATIONS:
            problems.append(f"metadata.annotations.{key}")
        else:
            ours[str(key)[len(PREFIX):]] = str(value)
    labels = metadata.get("labels") or {}
    if not isinstance(labels, dict) or any(not isinstance(v, str) for v in labels.values()):
        problems.append("metadata.labels (only name: string-value labels are supported)")
        labels = {}
    if spec.get("alertPolicies"):
        problems.append("spec.alertPolicies (burn alerts are the built-in multi-window multi-burn-rate alerts)")
    if spec.get("budgetingMethod", "Occurrences") != "Occurrences":
        problems.append(f"spec.budgetingMethod={spec.get('budgetingMethod')} (only Occurrences is supported)")
    indicator = _check_keys(spec.get("indicator"), "spec.indicator", "spec.indicator", problems)
    if not indicator:
        problems.append("spec.indicator (an inline indicator is required; indicatorRef is not supported)")
    _check_keys(indicator.get("metadata"), "spec.indicator.metadata", "spec.indicator.metadata", problems)
    ind_spec = _check_keys(indicator.get("spec"), "spec.indicator.spec", "spec.indicator.spec", problems)
    ratio = _check_keys(ind_spec.get("ratioMetric"), "spec.indicator.spec.ratioMetric",
                        "spec.indicator.spec.ratioMetric", problems)
    if indicator and not ratio:
        problems.append("spec.indicator.spec.ratioMetric (required: the only supported indicator)")
    queries = {}
    for part in ("good", "bad", "total"):
        if part in ratio:
            queries[part] = _metric_source(ratio[part], f"spec.indicator.spec.ratioMetric.{part}", problems)
    if ratio and ("total" not in ratio or ("good" in ratio) == ("bad" in ratio)):
        problems.append("spec.indicator.spec.ratioMetric (needs total and exactly one of good or bad)")
    window_days = _window_days(spec.get("timeWindow"), problems)
    objectives = spec.get("objectives")
    objective = None
    if not isinstance(objectives, list) or len(objectives) != 1:
        problems.append("spec.objectives (exactly one objective is supported)")
    else:
        item = _check_keys(objectives[0], "objective", "spec.objectives[0]", problems)
        if "targetPercent" in item:
            objective = item["targetPercent"]
        elif "target" in item:
            objective = item["target"] * 100 if isinstance(item["target"], (int, float)) else item["target"]
        else:
            problems.append("spec.objectives[0].target (required)")
    if problems:
        raise OpenSLOError("unsupported or invalid OpenSLO fields: " + "; ".join(dict.fromkeys(problems)))

    service = Service.objects.filter(slug=spec.get("service")).first()
    if service is None:
        raise OpenSLOError(f"spec.service: no service {spec.get('service')!r} in the catalog")
    slo = SLO.objects.filter(slug=metadata.get("name")).first() or SLO(slug=metadata.get("name") or "")
    slo.service = service
    slo.name = metadata.get("displayName") or metadata.get("name") or ""
    slo.description = spec.get("description") or ""
    slo.labels = dict(labels)
    slo.window_days = window_days
    slo.objective = round(float(objective), 10) if isinstance(objective, (int, float)) else objective
    slo.owner = ours.get("owner", "")
    slo.enabled = ours.get("enabled", "true") != "false"
    slo.severity_policy = json.loads(ours["severity-policy"]) if ours.get("severity-policy") else {}
    kind = ours.get("sli-kind")
    if kind in (SLIKind.AVAILABILITY, SLIKind.LATENCY):
        slo.sli_kind = kind
        slo.selector = ours.get("selector", "")
        slo.metric = ours.get("metric", "")
        slo.error_matcher = ours.get("error-matcher", DEFAULT_ERROR_MATCHER)
        if kind == SLIKind.LATENCY:
            try:
                slo.latency_threshold_seconds = float(ours.get("latency-threshold-seconds", ""))
            except ValueError:
                raise OpenSLOError("metadata.annotations.reliability-studio/latency-threshold-seconds: not a number") from None
        slo.good_query = slo.total_query = ""
    elif kind == SLIKind.CUSTOM and "good-query" in ours:
        slo.sli_kind, slo.good_query, slo.total_query = SLIKind.CUSTOM, ours["good-query"], ours.get("total-query", "")
        slo.selector = ""
    else:
        slo.sli_kind, slo.selector = SLIKind.CUSTOM, ""
        slo.good_query, slo.total_query = _custom_queries(ratio, queries)
    return slo


def _custom_queries(ratio: dict, queries: dict) -> tuple[str, str]:
    """A generic ratioMetric: counters become sum(increase(<selector>[$window]))."""
    if ratio.get("counter") is not True:
        raise OpenSLOError("spec.indicator.spec.ratioMetric.counter must be true (counters; gauges are not supported)")
    for part, query in queries.items():
        if not SELECTOR.fullmatch(query):
            raise OpenSLOError(f"spec.indicator.spec.ratioMetric.{part}: {query!r} is not a counter selector "
                               "such as http_requests_total{job=\"shop\"}")
    total = f"sum(increase({queries['total']}[$window]))"
    if "good" in queries:
        return f"sum(increase({queries['good']}[$window]))", total
    return f"{total} - (sum(increase({queries['bad']}[$window])) or vector(0))", total


def parse_yaml(text: str) -> list[SLO]:
    """Every SLO document of a (multi-document) YAML text; the first problem raises OpenSLOError."""
    try:
        docs = [d for d in yaml.safe_load_all(text) if d is not None]
    except yaml.YAMLError as exc:
        raise OpenSLOError(f"not valid YAML: {str(exc).splitlines()[0]}") from None
    if not docs:
        raise OpenSLOError("no OpenSLO document found")
    slos = []
    for index, doc in enumerate(docs):
        try:
            slos.append(parse_document(doc))
        except OpenSLOError as exc:
            raise OpenSLOError(f"document {index + 1}: {exc}" if len(docs) > 1 else str(exc)) from None
    return slos


def flatten_validation(exc: ValidationError) -> str:
    if hasattr(exc, "error_dict"):
        return "; ".join(f"{field}: {' '.join(msgs)}" for field, msgs in exc.message_dict.items())
    return " ".join(exc.messages)
