"""Hypotheses from the ranking and the evidence: what probably broke, how sure we are, what to do next.

Pure (no writes): `propose()` returns proposals; `investigation.services` upserts them (one per
incident, kind and service) and never touches a responder's decision.

How the confidence is made:

1. The ranking's calibrated confidence `p` of the service (investigation.rca.confidences) is the
   prior: the probability that this service is where the incident started.
2. Evidence of a specific mechanism multiplies the prior's *odds* by a likelihood ratio:
     a change (deploy/config) of that service shortly before its onset   × (1 + 2·s), s ∈ (0, 1] its
                                                                          proximity (changes.change_score)
     a crash loop / restarts in Kubernetes evidence                       × 2
     resource saturation (OOM, throttling, eviction; a resource metric)  × 1.5
     a new log template in the service's logs                             × 1.5
   so evidence moves a confidence but cannot make a service nobody ranked certain.
3. If the results sum to more than 1 they are divided by their sum (they are exclusive causes).
4. Responders' rejections condition the rest (services.rerank_hypotheses):
   p_i / (1 - Σ p_rejected), computed from these stored priors, so the order of decisions does not
   matter and changing a decision back is exact.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

from .models import EvidenceKind, EvidenceStatus, HypothesisKind
from .rca.ranking import metric_kind

LIKELIHOOD = {"deploy": 2.0, "crash": 2.0, "saturation": 1.5, "new_template": 1.5}
MIN_PRIOR = 0.01
CRASH_WORDS = ("crashloop", "crash loop", "backoff", "restart", "oomkill", "exit code")
SATURATION_WORDS = ("oom", "memory", "cpu", "throttl", "evict", "saturat", "pool exhausted", "disk pressure")
MAX_EVIDENCE = 12


@dataclass
class Proposal:
    kind: str
    service: str
    services: list[str]
    title: str
    description: str
    prior: float  # the confidence before responders' rejections are taken into account
    score: float
    evidence_ids: list[int] = field(default_factory=list)
    next_step: str = ""


def _odds(p: float) -> float:
    p = min(max(p, 1e-6), 1 - 1e-6)
    return p / (1 - p)


def _text(evidence) -> str:
    return (evidence.finding + " " + str(evidence.snapshot.get("reason", ""))).lower()


def _is_new_template(evidence) -> bool:
    snap = evidence.snapshot or {}
    if snap.get("new") is True:
        return True
    templates = snap.get("templates") or []
    return any(isinstance(t, dict) and t.get("new") for t in templates) or "new log template" in evidence.finding.lower()


def _template_text(evidence) -> str:
    snap = evidence.snapshot or {}
    if snap.get("template"):
        return str(snap["template"])
    for t in snap.get("templates") or []:
        if isinstance(t, dict) and t.get("new"):
            return str(t.get("template", ""))
    return ""


def _when(ts: float | None) -> str:
    return datetime.fromtimestamp(ts, tz=UTC).strftime("%H:%M:%S UTC") if ts is not None else "unknown time"


def propose(*, ranking: list[dict], evidence: list, scope: dict, detection_time: float, max_hypotheses: int = 5,
            suspect_seconds: float = 1800) -> list[Proposal]:
    """One proposal per ranked service with a positive score (best first, at most `max_hypotheses`),
    of the most specific kind its evidence supports."""
    in_scope = {s["slug"] for s in scope.get("services", [])}
    callers: dict[str, list[str]] = {}
    for caller, callee in scope.get("edges", []):
        callers.setdefault(callee, []).append(caller)
    anomalous = {r["service"] for r in ranking if r["score"] >= 1.0}
    by_service: dict[str, list] = {}
    for item in evidence:
        if item.status == EvidenceStatus.OK and item.service:
            by_service.setdefault(item.service, []).append(item)

    proposals: list[Proposal] = []
    for entry in ranking:
        if len(proposals) >= max_hypotheses:
            break
        service, prior = entry["service"], float(entry.get("confidence") or 0.0)
        if entry["score"] <= 0 or (prior < MIN_PRIOR and proposals):
            continue
        items = by_service.get(service, [])
        onset = entry.get("onset") or detection_time
        top_kind = metric_kind(entry["top_metric"])[2] if entry.get("top_metric") else None
        factor = 1.0
        notes: list[str] = []

        changes = [e for e in items if e.kind == EvidenceKind.CHANGES and e.score > 0]
        suspect = None
        for change in sorted(changes, key=lambda e: -e.score):
            at = datetime.fromisoformat(change.snapshot["occurred_at"]).timestamp()
            if at <= onset + 60 and onset - at <= suspect_seconds:
                suspect = (change, at)
                break
        kube = [e for e in items if e.kind == EvidenceKind.KUBERNETES and e.score > 0]
        crash = [e for e in kube if any(w in _text(e) for w in CRASH_WORDS)]
        saturation = [e for e in kube if any(w in _text(e) for w in SATURATION_WORDS)]
        new_logs = [e for e in items if e.kind == EvidenceKind.LOGS and _is_new_template(e)]
        if suspect:
            factor *= 1 + LIKELIHOOD["deploy"] * min(1.0, suspect[0].score)
            notes.append(suspect[0].finding)
        if crash:
            factor *= LIKELIHOOD["crash"]
            notes.append(crash[0].finding)
        if saturation or top_kind == "resource":
            factor *= LIKELIHOOD["saturation"]
            if saturation:
                notes.append(saturation[0].finding)
        if new_logs:
            factor *= LIKELIHOOD["new_template"]
            notes.append(new_logs[0].finding)

        dependents = sorted(c for c in callers.get(service, []) if c in anomalous)
        metric_text = (entry.get("top_metric") or "its signals").replace("_", " ")
        started = f"from {_when(entry.get('onset'))}" if entry.get("onset") else "around the detection"
        if service not in in_scope:
            kind = HypothesisKind.EXTERNAL_DEPENDENCY
            title = f"External dependency {service} is failing"
            step = f"Check {service}'s status page and the calls to it; fail over or degrade gracefully if it is down."
        elif suspect:
            change = suspect[0].snapshot
            kind = HypothesisKind.BAD_DEPLOY
            version = f" {change['version']}" if change.get("version") else ""
            title = f"Bad {change.get('kind', 'deploy')} of {service}{version}"
            step = (f"Roll back {service}{' from' + version if version else ''} and watch its {metric_text}; "
                    f"see {change['url']}" if change.get("url") else
                    f"Roll back {service}{' from' + version if version else ''} and watch its {metric_text}.")
        elif crash or entry.get("top_metric") == "availability":
            kind = HypothesisKind.CRASH_LOOP
            title = f"Crash loop in {service}" if crash else f"{service} is down (its scrapes fail)"
            step = f"Read the last termination reason and logs of {service}'s restarting pods (kubectl logs --previous)."
        elif saturation or top_kind == "resource":
            kind = HypothesisKind.RESOURCE_SATURATION
            title = f"Resource saturation in {service}"
            step = f"Compare {service}'s usage with its limits; scale out or raise the limit, then find what grew."
        elif new_logs:
            kind = HypothesisKind.CODE_ERROR
            template = _template_text(new_logs[0])
            title = f"Code-level errors in {service}" + (f": '{template[:120]}'" if template else "")
            step = f"Open {service}'s new error lines and a trace that carries them; find the code path that changed."
        elif top_kind == "latency":
            kind = HypothesisKind.LATENCY
            title = f"Latency in {service}"
            step = f"Open a slow trace through {service} and see which span grew; check its own dependencies and load."
        else:
            kind = HypothesisKind.DEPENDENCY_FAILURE
            title = f"{service} is failing" + (f"; {', '.join(dependents)} depend on it" if dependents else "")
            step = f"Look at {service}'s error logs and recent changes; if it is a dependency, protect its callers."
        description = f"{service} ranked with score {entry['score']:g}, {metric_text} changed {started}."
        if notes:
            description += " " + " ".join(n.rstrip(".") + "." for n in notes[:4])
        posterior = _odds(prior) * factor
        ranked_items = sorted(items, key=lambda e: (-e.score, e.pk))  # the strongest of its collected evidence
        proposals.append(Proposal(
            kind=kind, service=service, services=[service] + dependents, title=title[:300],
            description=description[:5000], prior=posterior / (1 + posterior), score=float(entry["score"]),
            evidence_ids=[e.pk for e in ranked_items[:MAX_EVIDENCE]], next_step=step[:2000],
        ))
    total = sum(p.prior for p in proposals)
    if total > 1:
        for p in proposals:
            p.prior = p.prior / total
    for p in proposals:
        p.prior = round(min(max(p.prior, 0.0), 1.0), 4)
    return proposals


def condition_on_rejections(priors: dict[int, float], rejected: set[int]) -> dict[int, float]:
    """P(i | none of the rejected is the cause) = p_i / (1 - Σ p_rejected), for the not-rejected."""
    mass = sum(priors[i] for i in rejected if i in priors)
    remaining = max(1.0 - mass, 1e-6)
    return {i: (p if i in rejected else min(1.0, p / remaining)) for i, p in priors.items()}
