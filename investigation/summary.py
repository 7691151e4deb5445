"""The run's summary and impact: deterministic text from the stored evidence, ranking and hypotheses.

Same inputs, same words: no clock, no randomness; times are the evidence's own (UTC). Example:

  payment errors began 10:02:13 UTC, 40 s before checkout's; new log template 'connection pool
  exhausted' ×312; pod payment-7f9 restarted 3 times; most likely cause: payment (0.82)
"""
from __future__ import annotations

from datetime import UTC, datetime

from .models import EvidenceKind, EvidenceStatus, HypothesisStatus
from .rca.ranking import metric_kind

WHAT = {"error": "errors", "latency": "latency", "load": "traffic", "resource": "resource use",
        "success": "success rate", "network": "network traffic", "loss": "packet loss", "missing": "telemetry"}
UNUSABLE = (EvidenceStatus.UNAVAILABLE, EvidenceStatus.TIMED_OUT, EvidenceStatus.NOT_CONFIGURED)
STATUS_WORDS = {EvidenceStatus.UNAVAILABLE: "unavailable", EvidenceStatus.TIMED_OUT: "timed out",
                EvidenceStatus.NOT_CONFIGURED: "not configured"}


def _clock(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=UTC).strftime("%H:%M:%S UTC")


def _what(entry: dict) -> str:
    if not entry.get("top_metric"):
        return "anomaly"
    if entry["top_metric"] == "availability":
        return "outage"
    return WHAT.get(metric_kind(entry["top_metric"])[2], entry["top_metric"].replace("_", " "))


def _template_phrase(item) -> str | None:
    snap = item.snapshot or {}
    templates = snap.get("templates") if isinstance(snap.get("templates"), list) else [snap]
    for t in templates:
        if isinstance(t, dict) and t.get("template") and (t.get("new") or snap.get("new")):
            count = t.get("count")
            return f"new log template '{str(t['template'])[:80]}'" + (f" ×{int(count)}" if count else "")
    return None


def build_summary(*, ranking: list[dict], evidence: list, hypotheses: list) -> str:
    """One readable line; `hypotheses` best first (rejected ones are skipped)."""
    parts: list[str] = []
    anomalous = [r for r in ranking if r["score"] >= 1.0 and r.get("onset") is not None]
    top = ranking[0] if ranking and ranking[0]["score"] > 0 else None
    if top is not None:
        service = top["service"]
        if top.get("onset") is not None:
            text = f"{service} {_what(top)} began {_clock(top['onset'])}"
            other = next((r for r in anomalous if r["service"] != service), None)
            if other is not None:
                delta = other["onset"] - top["onset"]
                if abs(delta) < 1:
                    text += f", at the same time as {other['service']}'s"
                else:
                    text += f", {abs(delta):.0f} s {'before' if delta > 0 else 'after'} {other['service']}'s"
            parts.append(text)
        else:
            parts.append(f"{service} shows the strongest {_what(top)} change")
        mine = sorted((e for e in evidence if e.service == service and e.status == EvidenceStatus.OK),
                      key=lambda e: (-e.score, e.pk))
        logs = next((p for p in (_template_phrase(e) for e in mine if e.kind == EvidenceKind.LOGS) if p), None)
        if logs:
            parts.append(logs)
        kube = next((e for e in mine if e.kind == EvidenceKind.KUBERNETES and e.score > 0), None)
        if kube:
            parts.append(kube.finding.rstrip("."))
        change = next((e for e in mine if e.kind == EvidenceKind.CHANGES and e.score > 0), None)
        if change:
            parts.append(change.finding.rstrip("."))
    else:
        parts.append("no anomaly found in the services in scope")
    best = next((h for h in hypotheses if h.status != HypothesisStatus.REJECTED), None)
    if best is not None:
        parts.append(f"most likely cause: {best.service} ({best.confidence:.2f})")
    missing = sorted({f"{e.source} ({STATUS_WORDS[e.status]})" for e in evidence if e.status in UNUSABLE and not e.service})
    if missing:
        parts.append("not available: " + ", ".join(missing))
    return "; ".join(parts)


def build_impact(*, scope: dict, evidence: list, blast_radius: list[tuple[str, int]],
                 slos: list[dict] | None = None) -> dict:
    """Services in the blast radius, failed requests during the incident (with the exact queries),
    and the SLOs touched.

    Failed requests are counted at the entry points of the services in scope (those nobody in scope
    calls): a failure deep in the graph usually fails its callers' requests too, so summing every
    service would count one user's failed request several times. Per-service counts are kept."""
    roles = {s["slug"]: s["role"] for s in scope.get("services", [])}
    called = {callee for _caller, callee in scope.get("edges", [])}
    services = [{"slug": slug, "role": role, "distance": 0} for slug, role in roles.items() if role != "neighbour"]
    services += [{"slug": slug, "role": "blast_radius", "distance": d} for slug, d in blast_radius
                 if slug not in {s["slug"] for s in services}]
    failed = {e.service: e for e in evidence if e.kind == EvidenceKind.METRICS and e.status == EvidenceStatus.OK
              and (e.snapshot or {}).get("metric") == "failed_requests"}
    by_service = {slug: float(e.snapshot.get("value") or 0.0) for slug, e in sorted(failed.items())}
    entry_points = [slug for slug in by_service if slug not in called]
    total = sum(by_service[s] for s in entry_points) if entry_points else (sum(by_service.values()) if by_service else None)
    impact = {
        "services": services,
        "failed_requests": None if total is None else round(total),
        "failed_requests_counted_at": entry_points,
        "failed_requests_by_service": {s: round(v) for s, v in by_service.items()},
        "failed_requests_queries": {slug: e.query for slug, e in sorted(failed.items())},
        # The SLOs of the incident's services (slos.selectors.incident_slos) with the budget this incident
        # consumed so far, as the SLO cycle last computed it (IncidentBudgetImpact); see services.
        "slos": list(slos or []),
    }
    names = ", ".join(s["slug"] for s in services) or "no service"
    text = f"Services affected or in the blast radius: {names}."
    if total is not None:
        text += f" About {round(total):,} requests failed during the incident window"
        text += f" (counted at {', '.join(entry_points)})." if entry_points else "."
    else:
        text += " Failed requests unknown (no metrics)."
    touched = [_slo_text(slo) for slo in impact["slos"]]
    if touched:
        text += " SLOs touched: " + "; ".join(touched) + "."
    impact["text"] = text
    return impact


def _slo_text(slo: dict) -> str:
    return f"{slo['name']} ({slo['objective']}): {slo['consumed by this incident']} used, {slo['budget left']} left"
