"""The investigation's regions on the incident page and its sections on the review page.

`register()` puts them into `incidents.panels` (call it from InvestigationConfig.ready()): the
summary and impact, the run's progress, the ranked hypotheses and the evidence tabs replace the
incidents' placeholders; the review page gets its editable sections. Everything here renders
stored rows and snapshots only — a page render never queries Prometheus, Loki, Tempo or
Kubernetes for investigation evidence (only an incident that has never been investigated falls
back to the live charts of its firing rules, `investigation.metric_evidence`).

Snapshots come from the collectors and may lack keys or carry new ones: every reader below takes
what it understands and ignores the rest, so an unexpected snapshot never breaks the page.
"""
from __future__ import annotations

import json
import math
import re
from datetime import UTC, datetime

from django.conf import settings

from incidents import panels
from incidents.models import Incident
from reliability_studio import grafana_links
from reliability_studio.telemetry.errors import TelemetryError

from . import review as reviews
from . import selectors
from .metric_evidence import metric_evidence
from .models import EvidenceKind, EvidenceStatus, HypothesisStatus, RunStatus, StepState

SOURCE_NAMES = {"prometheus": "Prometheus", "loki": "Loki", "tempo": "Tempo", "kubernetes": "Kubernetes",
                "grafana": "Grafana", "catalog": "Recorded changes", "changes": "Change sources",
                "metrics": "Prometheus", "logs": "Loki", "traces": "Tempo"}
KIND_SOURCE = {EvidenceKind.METRICS: "prometheus", EvidenceKind.LOGS: "loki", EvidenceKind.TRACES: "tempo",
               EvidenceKind.KUBERNETES: "kubernetes", EvidenceKind.CHANGES: "changes"}
PROBLEM_STATES = {EvidenceStatus.UNAVAILABLE, EvidenceStatus.TIMED_OUT, EvidenceStatus.NOT_CONFIGURED}
MAX_SERIES = 6
MAX_SPANS = 40
MAX_ROWS = 50


# --- small readers ---------------------------------------------------------------------------------

def _list(value) -> list:
    return value if isinstance(value, list) else []


def _dict(value) -> dict:
    return value if isinstance(value, dict) else {}


def _number(value) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return None if math.isnan(value) or math.isinf(value) else float(value)


def _epoch(value) -> float | None:
    """Unix seconds from a number, or from an ISO-8601 string."""
    number = _number(value)
    if number is not None:
        return number / 1000 if number > 1e11 else number  # milliseconds, just in case
    if isinstance(value, str) and value:
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
        return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).timestamp()
    return None


def _when(value) -> datetime | None:
    seconds = _epoch(value)
    return datetime.fromtimestamp(seconds, tz=UTC) if seconds is not None else None


def _text(value, limit: int = 2000) -> str:
    if value is None:
        return ""
    return str(value)[:limit]


def source_name(source: str, kind: str = "") -> str:
    source = source or KIND_SOURCE.get(kind, "")
    return SOURCE_NAMES.get(source, source.capitalize() if source else "The source")


_PREFIX = re.compile(r"^\s*[\w .-]{1,40}?\s+(?:is\s+)?(?:unavailable|timed out|not configured)\s*[:.]?\s*", re.I)


def status_text(status: str, source: str, detail: str = "", kind: str = "") -> str:
    """"Loki not configured", "Tempo unavailable: connection refused", "Prometheus timed out".

    Runner messages often already name the source ("tempo unavailable: …"): that prefix is dropped
    so the source is named once, capitalised."""
    name = source_name(source, kind)
    detail = (detail or "").strip()
    rest = _PREFIX.sub("", detail, count=1).strip() if status != EvidenceStatus.NO_DATA else detail
    if status == EvidenceStatus.NOT_CONFIGURED:
        return f"{name} not configured" + (f" ({rest.rstrip('.')})" if rest else "")
    if status in (EvidenceStatus.UNAVAILABLE, StepState.FAILED):
        return f"{name} unavailable" + (f": {rest}" if rest else "")
    if status == EvidenceStatus.TIMED_OUT:
        return f"{name} timed out" + (f": {rest}" if rest else "")
    if status == EvidenceStatus.NO_DATA:
        return detail or "No data"
    return detail


def trace_explore_url(trace_id: str) -> str:
    if not settings.GRAFANA_URL or not trace_id:
        return ""
    return grafana_links.explore_url(settings.GRAFANA_URL, {"trace": grafana_links.tempo_trace_pane(trace_id)})


def _prometheus_explore(query: str, start, end) -> str:
    if not settings.GRAFANA_URL or not query or start is None or end is None:
        return ""
    return grafana_links.explore_url(settings.GRAFANA_URL, {"impact": grafana_links.prometheus_pane(query, start, end)})


# --- evidence snapshots → what the templates show --------------------------------------------------

def metric_chart(snapshot: dict, window_start: float | None = None) -> dict | None:
    """The `data-chart` spec (static/js/charts.js) of a metrics snapshot, None if nothing to draw.

    Understands the metrics collector's {"metric", "unit", "start", "step", "values", "day_before",
    "change_point"} (one grid: the baseline, then the incident window from `window_start`, which is
    shaded as the baseline part) and the richer {"x": [ts], "series": [{"label", "values"}],
    "baseline": {"values" | "start", "end"}} form."""
    x, series = snapshot.get("x"), snapshot.get("series")
    if not isinstance(x, list) or not isinstance(series, list):
        values, start, step = snapshot.get("values"), _epoch(snapshot.get("start")), _number(snapshot.get("step"))
        if not isinstance(values, list) or start is None or not step:
            return None
        x = [start + i * step for i in range(len(values))]
        series = [{"label": snapshot.get("metric") or "value", "values": values}]
    x = [_epoch(t) for t in x]
    if not x or any(t is None for t in x):
        return None
    out = []
    for item in series:
        if not isinstance(item, dict) or len(out) == MAX_SERIES:
            continue
        values = item.get("values")
        if isinstance(values, list) and len(values) == len(x):
            out.append({"label": _text(item.get("label") or item.get("metric") or "series", 120),
                        "values": [_number(v) for v in values]})
    spec: dict = {"x": x, "series": out}
    unit = snapshot.get("unit")
    if isinstance(unit, str) and unit:
        spec["unit"] = unit[:20]
    day_before = snapshot.get("day_before")
    if isinstance(day_before, list) and len(day_before) == len(x):
        spec["series"].append({"label": "1 day earlier", "values": [_number(v) for v in day_before], "dash": True,
                               "color": "#8e8e8e"})
    baseline = _dict(snapshot.get("baseline"))
    b_values = baseline.get("values")
    if isinstance(b_values, list) and len(b_values) == len(x):
        spec["series"].append({"label": _text(baseline.get("label") or "baseline", 120),
                               "values": [_number(v) for v in b_values], "dash": True, "color": "#8e8e8e"})
    b_start, b_end = _epoch(baseline.get("start")), _epoch(baseline.get("end"))
    if b_start is None and window_start is not None:
        b_start, b_end = x[0], window_start
    if b_start is not None and b_end is not None and b_end > b_start and b_end > x[0] and b_start < x[-1]:
        spec["shade"] = [max(b_start, x[0]), min(b_end, x[-1])]
    change_point = _epoch(snapshot.get("change_point"))
    if change_point is not None and x[0] <= change_point <= x[-1]:
        spec["mark"] = change_point
    if not spec["series"]:
        return None
    return spec


def _baseline_facts(snapshot: dict) -> list[tuple[str, str]]:
    """Scalar facts of a metrics snapshot worth a line under the chart (robust z, baseline stats)."""
    facts = []
    z = _number(snapshot.get("robust_z"))
    if z is not None:
        facts.append(("robust z", f"{z:.1f}"))
    for key, label in (("baseline_median", "baseline median"), ("window_peak", "peak in the window")):
        number = _number(snapshot.get(key))
        if number is not None:
            facts.append((label, f"{number:.4g}"))
    for key, value in _dict(snapshot.get("baseline")).items():
        if key in ("values", "label", "start", "end"):
            continue
        number = _number(value)
        if number is not None:
            facts.append((f"baseline {key}", f"{number:.4g}"))
    return facts[:6]


def log_templates(snapshot: dict) -> list[dict]:
    rows = []
    for item in _list(snapshot.get("templates"))[:MAX_ROWS]:
        if not isinstance(item, dict):
            continue
        ratio = _number(item.get("rate_ratio"))
        rows.append({
            "template": _text(item.get("template"), 1000),
            "count": _number(item.get("count")),
            "baseline_count": _number(item.get("baseline_count")),
            "new": bool(item.get("new")),
            "rate_ratio": ratio,
            "first_seen": _when(item.get("first_seen")),
            "examples": [_text(e, 600) for e in _list(item.get("examples"))[:5]],
            "traces": [{"id": _text(t, 64), "explore_url": trace_explore_url(_text(t, 64))}
                       for t in _list(item.get("trace_ids"))[:5] if t],
        })
    return rows


def _lines_scanned(snapshot: dict) -> tuple[int | None, bool]:
    lines, truncated = snapshot.get("lines_scanned"), snapshot.get("truncated")
    if lines is None and isinstance(snapshot.get("lines"), dict):
        lines = sum(_number(v) or 0 for v in snapshot["lines"].values())
    if isinstance(truncated, dict):
        truncated = any(bool(v) for v in truncated.values())
    number = _number(lines)
    return (int(number) if number is not None else None), bool(truncated)


def trace_views(snapshot: dict) -> list[dict]:
    """Error traces with their spans as an indented tree; the span where the error started is marked."""
    views = []
    for trace in _list(snapshot.get("traces"))[:10]:
        if not isinstance(trace, dict):
            continue
        origin = _dict(trace.get("origin"))
        origin_service = _text(trace.get("origin_service") or origin.get("service"), 63)
        spans = [dict(s, span_id=s.get("span_id") or s.get("id"), parent_id=s.get("parent_id") or s.get("parent"))
                 for s in _list(trace.get("spans")) if isinstance(s, dict)]
        origin_id = origin.get("span_id")
        if origin_id:
            for span in spans:
                span["origin"] = span.get("origin") or span["span_id"] == origin_id
        by_id = {s.get("span_id"): s for s in spans if s.get("span_id")}
        children: dict = {}
        roots = []
        for span in spans:
            parent = span.get("parent_id")
            (children.setdefault(parent, []) if parent in by_id else roots).append(span)
        ordered: list[tuple[int, dict]] = []

        def walk(span, depth, seen):
            if len(ordered) >= MAX_SPANS or id(span) in seen:
                return
            seen.add(id(span))
            ordered.append((depth, span))
            for child in children.get(span.get("span_id"), []):
                walk(child, depth + 1, seen)

        seen: set = set()
        for root in roots:
            walk(root, 0, seen)
        marked_any = any(bool(s.get("origin")) for s in spans)
        rows = []
        for depth, span in ordered:
            is_origin = bool(span.get("origin")) if marked_any else bool(
                span.get("error") and span.get("service") == origin_service
                and not any(c.get("error") and c.get("service") == origin_service for c in children.get(span.get("span_id"), [])))
            rows.append({"depth": min(depth, 12), "service": _text(span.get("service"), 63),
                         "name": _text(span.get("name"), 200), "duration_ms": _number(span.get("duration_ms")),
                         "error": bool(span.get("error")), "status_message": _text(span.get("status_message"), 300),
                         "origin": is_origin})
        trace_id = _text(trace.get("trace_id"), 64)
        views.append({
            "trace_id": trace_id, "explore_url": trace_explore_url(trace_id),
            "root_service": _text(trace.get("root_service"), 63), "root_name": _text(trace.get("root_name"), 200),
            "duration_ms": _number(trace.get("duration_ms")), "start": _when(trace.get("start")),
            "error_services": [_text(s, 63) for s in _list(trace.get("error_services"))[:10]],
            "origin_service": origin_service, "origin_message": _text(origin.get("status_message"), 300),
            "matched": _text(trace.get("matched"), 10),
            "spans": rows, "spans_total": int(_number(trace.get("span_count")) or len(spans)),
        })
    return views


def _origin_counts(snapshot: dict) -> list[tuple[str, int]]:
    counts = _dict(snapshot.get("origin_counts"))
    pairs = [(str(k), int(_number(v) or 0)) for k, v in counts.items()]
    return sorted(pairs, key=lambda p: (-p[1], p[0]))[:10]


def kubernetes_view(snapshot: dict) -> dict:
    pods = []
    for p in _list(snapshot.get("pods"))[:MAX_ROWS]:
        if not isinstance(p, dict):
            continue
        last = _dict(p.get("last_termination"))
        pods.append({
            "name": _text(p.get("name"), 253), "phase": _text(p.get("phase"), 40), "ready": p.get("ready"),
            "restarts": _number(p.get("restarts")), "waiting_reason": _text(p.get("waiting_reason"), 100),
            "last_termination_reason": _text(p.get("last_termination_reason") or last.get("reason"), 100),
            "exit_code": _number(p.get("exit_code") if p.get("exit_code") is not None else last.get("exit_code")),
            "node": _text(p.get("node"), 253), "restarted_in_window": bool(p.get("restarted_in_window")),
        })
    events = [{
        "reason": _text(e.get("reason"), 100), "message": _text(e.get("message"), 500),
        "count": _number(e.get("count")), "last_seen": _when(e.get("last_seen")), "object": _text(e.get("object"), 253),
    } for e in _list(snapshot.get("events"))[:MAX_ROWS] if isinstance(e, dict)]
    rollouts = [{
        "revision": _text(r.get("revision"), 40), "replicaset": _text(r.get("replicaset"), 253),
        "created_at": _when(r.get("created_at") or r.get("created")),
        "images": [_text(i, 300) for i in _list(r.get("images"))[:5]],
        "in_window": bool(r.get("in_window")), "current": bool(r.get("current")),
        "change_cause": _text(r.get("change_cause"), 300),
    } for r in _list(snapshot.get("rollouts"))[:MAX_ROWS] if isinstance(r, dict)]
    deployment = _dict(snapshot.get("deployment"))
    errors = [f"{k}: {_text(v, 300)}" for k, v in _dict(snapshot.get("errors")).items()][:5]
    return {"pods": pods, "events": events, "rollouts": rollouts, "errors": errors,
            "pods_total": _number(snapshot.get("pods_total")),
            "deployment": {"name": _text(deployment.get("name"), 253), "replicas": _number(deployment.get("replicas")),
                           "ready": _number(deployment.get("ready")),
                           "unavailable": _number(deployment.get("unavailable"))} if deployment else None}


def change_rows(snapshot: dict) -> list[dict]:
    """Rows of a changes snapshot: {"changes": [...]}, or one change per item (the collector's form)."""
    changes = snapshot.get("changes")
    if not isinstance(changes, list):
        changes = [snapshot] if snapshot.get("occurred_at") or snapshot.get("version") else []
    return [{
        "kind": _text(c.get("kind"), 40), "service": _text(c.get("service"), 63), "version": _text(c.get("version"), 200),
        "author": _text(c.get("author"), 200), "occurred_at": _when(c.get("occurred_at")),
        "url": _text(c.get("url"), 2000) if str(c.get("url") or "").startswith(("http://", "https://")) else "",
        "source": _text(c.get("source"), 40), "description": _text(c.get("description"), 1000),
    } for c in changes[:MAX_ROWS] if isinstance(c, dict)]


def evidence_view(item, window_start: datetime | None = None, *, brief: bool = False) -> dict:
    """One Evidence row as the templates read it: the shared facts plus (unless `brief`) its kind's readout."""
    snapshot = _dict(item.snapshot)
    view = {
        "pk": item.pk, "anchor": f"evidence-{item.pk}", "kind": item.kind, "kind_label": item.get_kind_display(),
        "source": item.source, "source_name": source_name(item.source, item.kind), "service": item.service,
        "status": item.status, "ok": item.status in (EvidenceStatus.OK,),
        "problem": item.status in PROBLEM_STATES,
        "status_text": status_text(item.status, item.source, item.finding, item.kind),
        "finding": item.finding, "query": item.query, "explore_url": item.explore_url, "score": item.score,
        "anomaly_start": item.anomaly_start,
    }
    if brief:
        return view
    if item.kind == EvidenceKind.METRICS:
        chart = metric_chart(snapshot, window_start.timestamp() if window_start else None)
        view["chart_json"] = json.dumps(chart, separators=(",", ":"), allow_nan=False) if chart else ""
        view["facts"] = _baseline_facts(snapshot)
        view["metric"] = _text(snapshot.get("metric") or next(
            (s.get("metric") for s in _list(snapshot.get("series")) if isinstance(s, dict) and s.get("metric")), ""), 200)
    elif item.kind == EvidenceKind.LOGS:
        view["templates"] = log_templates(snapshot)
        view["lines_scanned"], view["truncated"] = _lines_scanned(snapshot)
    elif item.kind == EvidenceKind.TRACES:
        view["traces"] = trace_views(snapshot)
        view["origin_counts"] = _origin_counts(snapshot)
    elif item.kind == EvidenceKind.KUBERNETES:
        view.update(kubernetes_view(snapshot))
    elif item.kind == EvidenceKind.CHANGES:
        view["changes"] = change_rows(snapshot)
    return view


def _step(run, name: str) -> dict:
    for step in _list(getattr(run, "steps", None)):
        if isinstance(step, dict) and step.get("name") == name:
            return step
    return {}


def evidence_tabs(run, grouped: dict[str, list], selected: str = "") -> list[dict]:
    """One tab per kind: its items, and what the source said when it could not answer."""
    tabs = []
    for kind, label in EvidenceKind.choices:
        items = [evidence_view(e, getattr(run, "window_start", None)) for e in grouped.get(kind, [])]
        step = _step(run, kind)
        state = step.get("state", "")
        notices = []
        if state in (StepState.UNAVAILABLE, StepState.TIMED_OUT, StepState.NOT_CONFIGURED, StepState.FAILED):
            notices.append(status_text(state, KIND_SOURCE.get(kind, ""), _text(step.get("detail"), 500), kind))
        # A source that failed as a whole is one item without a service; say it once, as a notice.
        for view in [v for v in items if v["problem"] and not v["service"]]:
            if view["status_text"] not in notices:
                notices.append(view["status_text"])
            items.remove(view)
        problems = [v for v in items if v["problem"]]
        shown = [v for v in items if not v["problem"]]
        if run is None:
            waiting = ""
        elif state in (StepState.PENDING, "") and not items and not run.is_finished:
            waiting = "Waiting to collect…"
        elif state == StepState.RUNNING:
            waiting = f"{label}: collecting…"
        else:
            waiting = ""
        found = sum(1 for v in shown if v["status"] == EvidenceStatus.OK and v["score"] > 0)
        tabs.append({"kind": kind, "label": label, "items": shown, "problems": problems, "notices": notices,
                     "waiting": waiting, "count": len([v for v in shown if v["ok"]]), "found": found,
                     "warn": bool(notices or problems)})
    if not selected or selected not in {t["kind"] for t in tabs}:
        selected = next((t["kind"] for t in tabs if t["found"]), "") or next(
            (t["kind"] for t in tabs if t["count"]), EvidenceKind.METRICS)
    for tab in tabs:
        tab["selected"] = tab["kind"] == selected
    return tabs


# --- region builders -------------------------------------------------------------------------------

def _impact_view(run, incident: Incident) -> dict:
    impact = _dict(getattr(run, "impact", None))
    services = []
    for item in _list(impact.get("services"))[:30]:
        slug = item if isinstance(item, str) else _dict(item).get("slug") or _dict(item).get("service")
        if slug:
            services.append(_text(slug, 63))
    failed = _number(impact.get("failed_requests"))
    query = _text(impact.get("failed_requests_query"), 5000)
    slos = []
    for slo in _list(impact.get("slos"))[:10]:
        if isinstance(slo, dict):
            name = _text(slo.get("name") or slo.get("slo") or slo.get("slug") or "SLO", 200)
            facts = [(k, v) for k, v in slo.items() if k not in ("name", "slo", "slug") and isinstance(v, (str, int, float))
                     and not isinstance(v, bool)][:4]
            slos.append({"name": name, "facts": facts})
        elif isinstance(slo, str):
            slos.append({"name": slo, "facts": []})
    return {
        "services": services, "failed_requests": failed, "failed_requests_query": query,
        "failed_requests_explore": _prometheus_explore(query, getattr(run, "window_start", None),
                                                       getattr(run, "window_end", None)),
        "slos": slos, "known": bool(services or failed is not None or slos),
    }


def summary_region(request, incident: Incident) -> dict:
    run = selectors.evidence_run(incident)
    standing, _rejected = selectors.ranked_hypotheses(incident)
    top = standing[0] if standing else None
    return {"incident": incident, "summary_run": run, "impact_view": _impact_view(run, incident),
            "top_hypothesis": top}


def progress_region(request, incident: Incident) -> dict:
    run = selectors.latest_run(incident)
    steps = []
    for step in _list(getattr(run, "steps", None)):
        if not isinstance(step, dict):
            continue
        started, finished = _when(step.get("started_at")), _when(step.get("finished_at"))
        steps.append({"name": _text(step.get("name"), 40), "label": _text(step.get("label") or step.get("name"), 100),
                      "state": _text(step.get("state") or StepState.PENDING, 20),
                      "state_label": dict(StepState.choices).get(step.get("state"), _text(step.get("state"), 20)),
                      "detail": _text(step.get("detail"), 500), "started_at": started, "finished_at": finished,
                      "seconds": (finished - started).total_seconds() if started and finished else None})
    done = sum(1 for s in steps if s["state"] not in (StepState.PENDING, StepState.RUNNING))
    return {"incident": incident, "run": run, "steps": steps, "steps_done": done,
            "run_count": incident.investigation_runs.count() if run else 0,
            "running": bool(run and run.status in (RunStatus.QUEUED, RunStatus.RUNNING))}


def hypotheses_region(request, incident: Incident) -> dict:
    standing, rejected = selectors.ranked_hypotheses(incident)

    def view(h):
        return {"h": h, "pct": round(h.confidence * 100), "confirmed": h.status == HypothesisStatus.CONFIRMED,
                "rejected": h.status == HypothesisStatus.REJECTED,
                "evidence": [evidence_view(e, brief=True) for e in list(h.evidence.all())[:6]]}

    return {"incident": incident, "standing": [view(h) for h in standing], "rejected": [view(h) for h in rejected],
            "hypothesis_statuses": HypothesisStatus}


def evidence_region(request, incident: Incident) -> dict:
    run = selectors.evidence_run(incident)
    context = {"incident": incident, "evidence_run": run, "live_metrics": [], "live_metrics_error": ""}
    if run is None:
        # Never investigated (e.g. opened before the investigation existed): the live charts of the
        # incident's PromQL rules, as before. Once a run exists only its stored snapshots are shown.
        try:
            context["live_metrics"] = metric_evidence(incident)
        except TelemetryError as exc:
            context["live_metrics_error"] = str(exc)
    standing, _rejected = selectors.ranked_hypotheses(incident)
    preferred = ""
    if standing:
        strongest = sorted(standing[0].evidence.all(), key=lambda e: -e.score)
        preferred = strongest[0].kind if strongest else ""
    context["tabs"] = evidence_tabs(run, selectors.run_evidence(run), preferred)
    return context


def review_region(request, incident: Incident) -> dict:
    review = reviews.get_or_generate_review(incident)
    return {"review": review, "review_sections": reviews.section_views(review)}


def register() -> None:
    """Put the investigation's regions into the incident page and the review page (idempotent)."""
    panels.register_region("summary", "investigation/_summary.html", summary_region, column=panels.MAIN, order=10)
    panels.register_region("hypotheses", "investigation/_hypotheses.html", hypotheses_region, column=panels.MAIN, order=20)
    panels.register_region("evidence", "investigation/_evidence.html", evidence_region, column=panels.MAIN, order=30)
    panels.register_region("investigation", "investigation/_progress.html", progress_region, column=panels.SIDE, order=5)
    panels.register_region("review-sections", "investigation/_review_sections.html", review_region,
                           page=panels.REVIEW_PAGE, column=panels.MAIN, order=10)
