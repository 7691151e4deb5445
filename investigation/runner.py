"""The parts of a run that do not write: scoping, running the collectors within their deadlines,
and turning their inputs into the ranking's Case. `investigation.services.execute_run` drives them
and stores what they return.
"""
from __future__ import annotations

import logging
import time
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from types import SimpleNamespace

import numpy as np
from django.conf import settings
from django.db.models import Min
from django.utils import timezone

from detection.models import Alert
from incidents import selectors as incident_selectors
from incidents.models import Incident, Service
from reliability_studio.telemetry.errors import KIND_NOT_CONFIGURED, KIND_TIMEOUT, TelemetryError

from . import rca
from .collectors.base import CaseInputs, EvidenceItem, Scope
from .models import EvidenceStatus, StepState
from .scope import telemetry_selectors

log = logging.getLogger(__name__)
NEIGHBOUR_HOPS = 2
MAX_UNSCOPED = 25  # services looked at when the incident names none
AFTER_RESOLVE = timedelta(minutes=2)
MIN_WINDOW = timedelta(seconds=60)


def build_scope(incident: Incident, now: datetime | None = None) -> Scope:
    """The primary and affected services plus their callers and callees within two hops; the
    incident window (from a few minutes before the first pending sighting) and an equally long
    baseline just before it."""
    now = now or timezone.now()
    involved = list(incident.affected_services.all())
    if incident.primary_service_id and all(s.pk != incident.primary_service_id for s in involved):
        involved.append(incident.primary_service)
    roles: dict[int, str] = {s.pk: "affected" for s in involved}
    if incident.primary_service_id:
        roles[incident.primary_service_id] = "primary"
    start = set(roles)  # callers and callees of the incident's own services, not of their neighbours
    for direction in ("callers", "callees"):
        for pk, distance in incident_selectors.reachable(start, incident_selectors.dependency_edges(direction)).items():
            if distance <= NEIGHBOUR_HOPS:
                roles.setdefault(pk, "neighbour")
    if not roles:
        # An alert that names no service (e.g. a target-level `up` without a service label): look at
        # the whole catalog rather than at nothing, bounded so a large estate stays cheap.
        roles = {pk: "neighbour" for pk in Service.objects.order_by("slug").values_list("pk", flat=True)[:MAX_UNSCOPED]}
    services = Service.objects.in_bulk(list(roles))
    order = {"primary": 0, "affected": 1, "neighbour": 2}
    ordered = sorted(services.values(), key=lambda s: (order[roles[s.pk]], s.slug))
    slugs = [s.slug for s in ordered]
    edges = [
        (services[a].slug, services[b].slug)
        for a, b in Service.depends_on.through.objects.filter(from_service_id__in=list(services),
                                                               to_service_id__in=list(services))
        .values_list("from_service_id", "to_service_id").order_by("from_service_id", "to_service_id")
    ]
    times = Alert.objects.filter(incident=incident).aggregate(pending=Min("active_since"), firing=Min("firing_since"))
    first_sighting = min(t for t in (times["pending"], times["firing"], incident.started_at) if t is not None)
    detection = times["firing"] or incident.detected_at
    lead = timedelta(seconds=settings.INVESTIGATION_WINDOW_LEAD_SECONDS)
    window_start = first_sighting - lead
    window_end = min(incident.resolved_at + AFTER_RESOLVE, now) if incident.resolved_at else now
    window_end = max(window_end, detection + timedelta(seconds=1))
    window_start = min(window_start, window_end - MIN_WINDOW)  # never into the future: longer, earlier
    length = window_end - window_start
    return Scope(
        incident_id=incident.pk,
        services=slugs,
        roles={s.slug: roles[s.pk] for s in ordered},
        edges=edges,
        selectors={s.slug: telemetry_selectors(s) for s in ordered},
        window_start=window_start,
        window_end=window_end,
        baseline_start=window_start - length,
        baseline_end=window_start,
        detection_time=detection,
    )


def scope_json(scope: Scope) -> dict:
    return {"services": [{"slug": s, "role": scope.roles[s]} for s in scope.services],
            "edges": [list(e) for e in scope.edges], "detection_time": scope.detection_time.isoformat(),
            "selectors": scope.selectors}


@dataclass
class Outcome:
    """What one collector produced (or why it produced nothing)."""

    step: str
    state: str  # StepState
    items: list[EvidenceItem] = field(default_factory=list)
    inputs: CaseInputs = field(default_factory=CaseInputs)
    detail: str = ""
    seconds: float = 0.0


def _source_item(collector, status: str, finding: str, detail: dict) -> EvidenceItem:
    return EvidenceItem(collector.kind, collector.source, "", "", detail, finding[:500], status=status)


def not_configured(collector) -> Outcome:
    message = getattr(collector, "not_configured_message", lambda: f"{collector.source} is not configured.")()
    return Outcome(collector.step, StepState.NOT_CONFIGURED,
                   [_source_item(collector, EvidenceStatus.NOT_CONFIGURED, message, {"reason": message})], detail=message)


def missing_collector(step: str, kind: str) -> Outcome:
    message = f"No {step} collector is installed."
    item = EvidenceItem(kind, step, "", "", {"reason": message}, message, status=EvidenceStatus.NOT_CONFIGURED)
    return Outcome(step, StepState.NOT_CONFIGURED, [item], detail=message)


def run_collectors(collectors: list, scope: Scope, *, timeout: float, on_outcome=lambda outcome: None) -> list[Outcome]:
    """Run every configured collector in its own thread, each with its own deadline.

    A collector that raises TelemetryError becomes one "unavailable" item; one still running at its
    deadline becomes "timed out" and is abandoned (its thread ends when its HTTP timeout does; it
    never writes to the database). `on_outcome` is called on this thread as each one finishes, so
    the caller can store and publish step by step.
    """
    outcomes: dict[str, Outcome] = {}
    started = time.monotonic()
    deadline = started + timeout
    margin = min(0.3, 0.1 * timeout)
    pool = ThreadPoolExecutor(max_workers=max(1, len(collectors)), thread_name_prefix="rs-collector")
    futures = {}
    try:
        for collector in collectors:
            if not collector.configured():
                outcomes[collector.step] = not_configured(collector)
                on_outcome(outcomes[collector.step])
                continue
            # Collectors get a slightly earlier deadline, so one that honours it hands in its partial
            # evidence (some services answered) before the runner stops waiting for it.
            futures[collector.step] = (collector, pool.submit(collector.collect, scope, deadline - margin))
        pending = {future: (step, collector) for step, (collector, future) in futures.items()}
        while pending:  # stored and published as each finishes, not in a fixed order
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            done, _ = wait(pending, timeout=remaining, return_when=FIRST_COMPLETED)
            for future in done:
                step, collector = pending.pop(future)
                outcome = _outcome(step, collector, future)
                outcome.seconds = round(time.monotonic() - started, 3)
                outcomes[step] = outcome
                on_outcome(outcome)
        for future, (step, collector) in pending.items():  # still running at the deadline: abandoned
            future.cancel()
            message = f"{collector.source} did not answer within {timeout:g} s"
            outcome = Outcome(step, StepState.TIMED_OUT, [_source_item(
                collector, EvidenceStatus.TIMED_OUT, message, {"timeout_seconds": timeout})], detail=message,
                seconds=round(time.monotonic() - started, 3))
            outcomes[step] = outcome
            on_outcome(outcome)
    finally:
        pool.shutdown(wait=False, cancel_futures=True)  # never wait for a hanging source
    return list(outcomes.values())


def _outcome(step: str, collector, future) -> Outcome:
    """What a finished collector's future means for its step."""
    try:
        items, inputs = future.result()
    except TelemetryError as exc:
        if exc.kind == KIND_NOT_CONFIGURED:
            return not_configured(collector)
        timed_out = exc.kind == KIND_TIMEOUT
        message = f"{exc.source} {'timed out' if timed_out else 'unavailable'}: {exc.message}"[:500]
        return Outcome(step, StepState.TIMED_OUT if timed_out else StepState.UNAVAILABLE, [_source_item(
            collector, EvidenceStatus.TIMED_OUT if timed_out else EvidenceStatus.UNAVAILABLE, message,
            {"error": exc.message[:2000], "error_kind": exc.kind, "http_status": exc.status})], detail=message)
    except Exception as exc:  # a collector bug must not sink the run: say so, keep the others
        log.exception("collector %s failed", step)
        message = f"{step} collector failed: {type(exc).__name__}: {exc}"[:500]
        return Outcome(step, StepState.FAILED, [_source_item(collector, EvidenceStatus.UNAVAILABLE, message,
                                                              {"error": message})], detail=message)
    failed = [i for i in items if i.status in (EvidenceStatus.UNAVAILABLE, EvidenceStatus.TIMED_OUT)]
    state, detail = StepState.DONE, f"{len(items)} items"
    if failed and len(failed) == len(items):
        state = (StepState.TIMED_OUT if all(i.status == EvidenceStatus.TIMED_OUT for i in failed)
                 else StepState.UNAVAILABLE)
    elif failed:
        detail += f", {len(failed)} unavailable or timed out"
    return Outcome(step, state, items, inputs, detail)


def build_case(scope: Scope, outcomes: list[Outcome]) -> rca.Case | None:
    """The ranking's Case from the collectors' inputs; None when no collector produced metrics."""
    times = None
    series: dict[str, dict[str, np.ndarray]] = {}
    logs, traces = [], []
    for outcome in outcomes:
        inputs = outcome.inputs
        if inputs.times is not None and inputs.series:
            times = inputs.times if times is None else times
            for service, metrics in inputs.series.items():
                if len(inputs.times) == len(times):
                    series.setdefault(service, {}).update(metrics)
        logs += list(inputs.logs)
        traces += list(inputs.traces)
    if times is None:
        return None
    # Cut the leading stretch where no series has data yet (a young Prometheus, a new service): the
    # ranking reads its baseline from the start of the case, and empty points are not a baseline.
    present = np.zeros(len(times), dtype=bool)
    for metrics in series.values():
        for values in metrics.values():
            present |= np.isfinite(values)
    if not present.any():
        return None
    first = int(np.argmax(present))
    times = times[first:]
    series = {s: {m: v[first:] for m, v in ms.items()} for s, ms in series.items()}
    return rca.build_case(times=times, series=series, detection_time=scope.detection_time.timestamp(),
                          edges=scope.edges, logs=logs, traces=traces, services=scope.services)


def rank(case: rca.Case | None, feedback: rca.Feedback | None = None) -> list[dict]:
    """The ranking as stored on the run: best first, with the calibrated confidence of each.

    `feedback` (responders' past confirmations and rejections, see `responder_feedback`) re-weights
    services of similar incidents; `evidence` is stored so that this run can be feedback later.
    """
    if case is None:
        return []
    ranking = rca.rank_root_causes(case, feedback=feedback)
    return [
        {"service": r.service, "score": r.score, "confidence": round(float(c), 4), "onset": r.onset,
         "top_metric": r.top_metric, "signals": r.signals, "evidence": r.evidence}
        for r, c in zip(ranking, rca.confidences(ranking))
    ]


def stored_signature(ranking: list[dict]) -> str:
    """The fault signature (rca.feedback.evidence_signature) of a ranking as stored on a run."""
    return rca.evidence_signature([SimpleNamespace(service=r.get("service", ""), signals=r.get("signals") or {},
                                                   evidence=r.get("evidence", "other")) for r in ranking])


def responder_feedback(decisions) -> rca.Feedback:
    """Feedback from decided hypotheses: (service, the ranking of the run that proposed it, confirmed)."""
    return rca.Feedback(
        rca.FeedbackRecord(service=service, signature=stored_signature(ranking), confirmed=confirmed)
        for service, ranking, confirmed in decisions if ranking)
