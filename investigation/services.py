"""Writes of the investigation: start a run, execute it, decide hypotheses, record changes.

Every state change commits in its own short transaction and publishes through
`incidents.events.publish` (delivered after commit): `investigation.progress` per step, so the
incident page shows the run step by step, and `investigation.updated` when evidence or hypotheses
change. Incidents themselves change only through `incidents.services`.

Idempotency lives in the database: one run per (incident, trigger_key), one evidence row per
(run, kind, source, service, query), one hypothesis per (incident, kind, service), one change per
(source, external_id). A task redelivered after a worker died upserts onto the same rows.
"""
from __future__ import annotations

import logging
import time
import uuid
from datetime import datetime, timedelta
from typing import Callable

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from incidents import events
from incidents import selectors as incident_selectors
from incidents import services as incident_services
from incidents.models import EventKind, Incident, Service, Source
from slos import selectors as slo_selectors
from slos.models import IncidentBudgetImpact

from . import hypotheses as hypothesis_rules
from . import runner, summary, tasks
from .collectors import changes as change_collector
from .collectors import registry
from .collectors.base import EvidenceItem
from .models import (
    STEPS,
    Change,
    ChangeKind,
    ChangeSource,
    Evidence,
    EvidenceKind,
    Hypothesis,
    HypothesisStatus,
    InvestigationRun,
    RunStatus,
    StepState,
    Trigger,
    initial_steps,
    query_digest,
)

log = logging.getLogger(__name__)
ACTOR = "investigation"
LOCK_NAMESPACE = 0x1A7E  # pg advisory lock: (namespace, run id)
DECISIONS = (HypothesisStatus.CONFIRMED, HypothesisStatus.REJECTED)
UNAVAILABLE_STATES = (StepState.UNAVAILABLE, StepState.TIMED_OUT, StepState.FAILED)
Progress = Callable[[InvestigationRun, str, str, str], None]


# -- events ------------------------------------------------------------------------------------

def progress_data(run: InvestigationRun, step: str) -> dict:
    return {"incident": run.incident_id, "run": run.pk, "status": run.status, "step": step, "steps": run.steps}


def _publish_progress(run: InvestigationRun, step: str) -> None:
    events.publish("investigation.progress", progress_data(run, step), incident_id=run.incident_id)


def _publish_updated(run: InvestigationRun, what: str) -> None:
    events.publish("investigation.updated", {"incident": run.incident_id, "run": run.pk, "status": run.status,
                                             "changed": what}, incident_id=run.incident_id)


# -- starting runs -------------------------------------------------------------------------------

def start_investigation(*, incident: Incident, trigger: str, trigger_key: str | None = None, user=None,
                        countdown: float | None = None, queue: bool = True) -> InvestigationRun:
    """The run for this trigger, created once: the same trigger delivered twice finds the same run.

    A new run is queued (`investigation.tasks.run_investigation`) once this transaction commits; a
    manual re-run gets a fresh key. `queue=False` leaves executing it to the caller (the CLI).
    """
    if trigger not in Trigger.values:
        raise ValidationError({"trigger": f"unknown trigger {trigger!r}"})
    if trigger_key is None:
        trigger_key = f"manual:{uuid.uuid4().hex}" if trigger == Trigger.MANUAL else str(trigger)
    requested_by = user if getattr(user, "is_authenticated", False) else None
    try:
        with transaction.atomic():
            run = InvestigationRun.objects.create(incident=incident, trigger=trigger, trigger_key=trigger_key,
                                                  requested_by=requested_by)
            _publish_progress(run, "queued")
    except IntegrityError:
        return InvestigationRun.objects.get(incident=incident, trigger_key=trigger_key)
    if queue:
        options = {"countdown": countdown} if countdown else {}
        transaction.on_commit(lambda: tasks.run_investigation.apply_async((run.pk,), **options), robust=True)
    return run


def investigate_joined_services(*, incident_id: int, service_ids: list[int]) -> InvestigationRun | None:
    """Services joined an incident: one run per debounce bucket, started at the bucket's end so a
    burst of joins makes one run. Skipped when a queued run will see them anyway (it scopes when
    it starts) or a running one already has them in scope (as neighbours)."""
    incident = Incident.objects.filter(pk=incident_id).first()
    if incident is None or not incident.is_active:
        return None
    slugs = set(Service.objects.filter(pk__in=service_ids).values_list("slug", flat=True))
    for run in InvestigationRun.objects.filter(incident=incident, status__in=[RunStatus.QUEUED, RunStatus.RUNNING]):
        if not run.scope:  # queued, or running but not yet scoped: it will read the services as they are now
            return None
        if slugs <= {s["slug"] for s in run.scope.get("services", [])}:
            return None
    debounce = max(1, settings.INVESTIGATION_JOIN_DEBOUNCE_SECONDS)
    now = time.time()
    bucket = int(now // debounce)
    return start_investigation(incident=incident, trigger=Trigger.SERVICE_JOINED, trigger_key=f"joined:{bucket}",
                               countdown=max(0.0, (bucket + 1) * debounce - now))


# -- executing a run -----------------------------------------------------------------------------

def _try_lock(run_id: int) -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s, %s)", [LOCK_NAMESPACE, run_id])
        return bool(cursor.fetchone()[0])


def _unlock(run_id: int) -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_unlock(%s, %s)", [LOCK_NAMESPACE, run_id])


def _save(run: InvestigationRun, fields: list[str], step: str) -> None:
    with transaction.atomic():
        run.save(update_fields=fields)
        _publish_progress(run, step)


def _step(run: InvestigationRun, name: str, state: str, detail: str = "", progress: Progress | None = None) -> None:
    now = timezone.now().isoformat()
    for step in run.steps:
        if step["name"] == name:
            step["state"] = state
            step["detail"] = detail[:500]
            if state == StepState.RUNNING:
                step["started_at"], step["finished_at"] = now, None
            else:
                step["started_at"] = step["started_at"] or now
                step["finished_at"] = now
    _save(run, ["steps"], name)
    if progress is not None:
        progress(run, name, state, detail)


def _slos_touched(incident: Incident) -> list[dict]:
    """The incident's SLOs and what it consumed of each (as the SLO cycle last stored it).

    Readable facts first (the page and the review show them as they are); the numbers under "data"."""
    consumed = {i.slo_id: i.consumed for i in IncidentBudgetImpact.objects.filter(incident=incident)}
    touched = []
    for slo in slo_selectors.incident_slos(incident):
        used, left = consumed.get(slo.pk), slo.budget_remaining
        touched.append({
            "name": slo.name, "service": slo.service.slug,
            "consumed by this incident": "not computed yet" if used is None else f"{used * 100:.2f} % of the budget",
            "budget left": "no data" if left is None else f"{max(left, 0.0) * 100:.1f} %",
            "objective": f"{slo.objective:g} % over {slo.window_days} d",
            "data": {"id": slo.pk, "objective": slo.objective, "window_days": slo.window_days, "status": slo.status,
                     "budget_remaining": left, "consumed": used},
        })
    return touched


FEEDBACK_DECISIONS = 500  # the most recent decisions that re-weight a new ranking


def _responder_feedback(incident_id: int):
    """Confirmations and rejections on other incidents, newest first: similar incidents learn from them."""
    decided = (Hypothesis.objects.exclude(incident_id=incident_id).exclude(run=None)
               .filter(status__in=[HypothesisStatus.CONFIRMED, HypothesisStatus.REJECTED])
               .order_by("-decided_at").values_list("service", "run__ranking", "status")[:FEEDBACK_DECISIONS])
    return runner.responder_feedback((service, ranking, status == HypothesisStatus.CONFIRMED)
                                     for service, ranking, status in decided)


def execute_run(run_id: int, *, progress: Progress | None = None) -> InvestigationRun:
    """Run the workflow for one run; safe to call twice.

    A finished run returns as it is. A run another live worker is executing (it holds the run's
    advisory lock) returns untouched. A run left "running" by a dead worker is resumed from the
    start: its evidence and hypotheses are upserts, so nothing is duplicated. After
    INVESTIGATION_MAX_ATTEMPTS attempts it is marked failed.
    """
    run = InvestigationRun.objects.select_related("incident").get(pk=run_id)
    if run.is_finished:
        return run
    if not _try_lock(run_id):
        return run
    try:
        run.refresh_from_db()
        if run.is_finished:
            return run
        if run.attempts >= settings.INVESTIGATION_MAX_ATTEMPTS:
            run.status, run.finished_at = RunStatus.FAILED, timezone.now()
            run.error = f"gave up after {run.attempts} attempts (the worker died each time)"
            _save(run, ["status", "finished_at", "error"], "done")
            return run
        run.status = RunStatus.RUNNING
        run.attempts += 1
        run.started_at = run.started_at or timezone.now()
        run.steps = initial_steps()
        run.error = ""
        _save(run, ["status", "attempts", "started_at", "steps", "error"], "scoping")
        try:
            _workflow(run, progress)
        except Exception as exc:
            log.exception("investigation run %s failed", run.pk)
            run.status, run.finished_at = RunStatus.FAILED, timezone.now()
            run.error = f"{type(exc).__name__}: {exc}"[:5000]
            _save(run, ["status", "finished_at", "error"], "done")
            if progress is not None:
                progress(run, "done", run.status, run.error)
        return run
    finally:
        _unlock(run_id)


def _workflow(run: InvestigationRun, progress: Progress | None) -> None:
    incident = Incident.objects.select_related("primary_service").get(pk=run.incident_id)

    _step(run, "scoping", StepState.RUNNING, progress=progress)
    scope = runner.build_scope(incident)
    run.scope = runner.scope_json(scope)
    run.window_start, run.window_end = scope.window_start, scope.window_end
    run.baseline_start, run.baseline_end = scope.baseline_start, scope.baseline_end
    run.save(update_fields=["scope", "window_start", "window_end", "baseline_start", "baseline_end"])
    _step(run, "scoping", StepState.DONE, f"{len(scope.services)} services: {', '.join(scope.services)}", progress)

    collectors = registry.collectors()
    present = {c.step for c in collectors}
    outcomes: list[runner.Outcome] = []
    for name, _label in STEPS:
        if name in ("metrics", "logs", "traces", "kubernetes", "changes") and name not in present:
            outcome = runner.missing_collector(name, name)
            store_evidence(run, outcome.items)
            outcomes.append(outcome)
            _step(run, name, outcome.state, outcome.detail, progress)
    for collector in collectors:
        if hasattr(collector, "prepare") and collector.configured():
            collector.prepare(scope)  # database reads happen here, on this thread
        _step(run, collector.step, StepState.RUNNING, progress=progress)

    def finished(outcome: runner.Outcome) -> None:
        items = list(outcome.items)
        if outcome.step == "kubernetes":
            items += change_collector.rollout_items(outcome.items, scope)  # rollouts are changes too
        store_evidence(run, items)
        _record_discovered_changes(items)
        _step(run, outcome.step, outcome.state, outcome.detail, progress)

    outcomes += runner.run_collectors(collectors, scope, timeout=settings.INVESTIGATION_COLLECTOR_TIMEOUT_SECONDS,
                                      on_outcome=finished)

    _step(run, "ranking", StepState.RUNNING, progress=progress)
    run.ranking = runner.rank(runner.build_case(scope, outcomes), feedback=_responder_feedback(run.incident_id))
    run.save(update_fields=["ranking"])
    evidence = list(run.evidence.all())
    proposals = hypothesis_rules.propose(
        ranking=run.ranking, evidence=evidence, scope=run.scope, detection_time=scope.detection_time.timestamp(),
        max_hypotheses=settings.INVESTIGATION_MAX_HYPOTHESES,
        suspect_seconds=settings.INVESTIGATION_DEPLOY_SUSPECT_SECONDS)
    _store_hypotheses(run, proposals)
    top = run.ranking[0] if run.ranking else None
    _step(run, "ranking", StepState.DONE,
          f"most likely: {top['service']} ({top['confidence']:.2f})" if top else "no metrics to rank", progress)

    _step(run, "summarising", StepState.RUNNING, progress=progress)
    ordered = list(Hypothesis.objects.filter(incident=incident).order_by("rank", "-confidence", "id"))
    run.summary = summary.build_summary(ranking=run.ranking, evidence=evidence,
                                        hypotheses=[h for h in ordered if h.run_id == run.pk or h.status != HypothesisStatus.PROPOSED])
    blast = [(s.slug, d) for s, d in incident_selectors.incident_blast_radius(incident)]
    run.impact = summary.build_impact(scope=run.scope, evidence=evidence, blast_radius=blast,
                                      slos=_slos_touched(run.incident))
    run.save(update_fields=["summary", "impact"])
    _write_incident_text(incident, run)
    _step(run, "summarising", StepState.DONE, progress=progress)

    unavailable = any(s["state"] in UNAVAILABLE_STATES for s in run.steps)
    run.status = RunStatus.PARTIAL if unavailable else RunStatus.COMPLETE
    run.finished_at = timezone.now()
    with transaction.atomic():
        run.save(update_fields=["status", "finished_at"])
        _publish_progress(run, "done")
        _publish_updated(run, "run")
    if progress is not None:
        progress(run, "done", run.status, "")


def store_evidence(run: InvestigationRun, items: list[EvidenceItem]) -> list[Evidence]:
    """Upsert each item on (run, kind, source, service, query): a retried run rewrites, never adds."""
    stored = []
    with transaction.atomic():
        for item in items:
            defaults = {
                "status": item.status, "query": item.query, "explore_url": item.explore_url[:4000],
                "snapshot": item.snapshot, "snapshot_bytes": item.snapshot_bytes(), "score": float(item.score),
                "anomaly_start": item.anomaly_start, "finding": item.finding[:500],
            }
            key = {"run": run, "kind": item.kind, "source": item.source[:20], "service": item.service[:63],
                   "query_hash": query_digest(item.query)}
            try:
                with transaction.atomic():
                    evidence, _created = Evidence.objects.update_or_create(**key, defaults=defaults)
            except IntegrityError:  # a concurrent writer inserted the same key first: update it
                evidence = Evidence.objects.get(**key)
                for field, value in defaults.items():
                    setattr(evidence, field, value)
                evidence.save()
            stored.append(evidence)
        if items:
            _publish_updated(run, "evidence")
    return stored


def _record_discovered_changes(items: list[EvidenceItem]) -> None:
    """Rollouts and deploy annotations a collector found become Change rows (idempotent)."""
    for item in items:
        snap = item.snapshot
        if item.kind != EvidenceKind.CHANGES or not snap.get("record_change"):
            continue
        service = Service.objects.filter(slug=snap["service"]).first()
        if service is None:
            continue
        record_change(service=service, version=snap.get("version", ""), kind=snap.get("kind", ChangeKind.DEPLOY),
                      source=snap["source"], description=snap.get("description", ""),
                      occurred_at=datetime.fromisoformat(snap["occurred_at"]), external_id=snap["external_id"])


def _store_hypotheses(run: InvestigationRun, proposals: list) -> None:
    """Upsert proposals (one per incident, kind, service). A decided hypothesis keeps its decision;
    undecided ones from earlier runs that this run no longer proposes are dropped."""
    priors = {}
    with transaction.atomic():
        keep = []
        for p in proposals:
            hypothesis, _ = Hypothesis.objects.select_for_update().get_or_create(
                incident_id=run.incident_id, kind=p.kind, service=p.service,
                defaults={"title": p.title, "confidence": p.prior, "run": run})
            hypothesis.run = run
            hypothesis.services, hypothesis.title, hypothesis.description = p.services, p.title, p.description
            hypothesis.score, hypothesis.next_step, hypothesis.confidence = p.score, p.next_step, p.prior
            hypothesis.full_clean(exclude=["incident", "run", "decided_by"], validate_constraints=False)
            hypothesis.save()
            hypothesis.evidence.set(p.evidence_ids)
            keep.append(hypothesis.pk)
            priors[f"{p.kind}:{p.service}"] = p.prior
        (Hypothesis.objects.filter(incident_id=run.incident_id, status=HypothesisStatus.PROPOSED)
         .exclude(pk__in=keep).delete())
        for entry in run.ranking:
            entry["hypotheses"] = {k.split(":", 1)[0]: v for k, v in priors.items() if k.split(":", 1)[1] == entry["service"]}
        run.save(update_fields=["ranking"])
        rerank_hypotheses(run.incident_id)
        _publish_updated(run, "hypotheses")


def _prior(hypothesis: Hypothesis) -> float:
    if hypothesis.run_id:
        for entry in hypothesis.run.ranking:
            if entry.get("service") == hypothesis.service and hypothesis.kind in (entry.get("hypotheses") or {}):
                return float(entry["hypotheses"][hypothesis.kind])
    return hypothesis.confidence


def rerank_hypotheses(incident_id: int) -> list[Hypothesis]:
    """Ranks 1..n over the not-rejected (by conditioned confidence), the rejected after them;
    confidences conditioned on the rejections (hypotheses.condition_on_rejections)."""
    rows = list(Hypothesis.objects.select_related("run").filter(incident_id=incident_id))
    priors = {h.pk: _prior(h) for h in rows}
    rejected = {h.pk for h in rows if h.status == HypothesisStatus.REJECTED}
    conditioned = hypothesis_rules.condition_on_rejections(priors, rejected)
    order = sorted(rows, key=lambda h: (h.pk in rejected, -conditioned[h.pk], -h.score, h.pk))
    for rank, h in enumerate(order, start=1):
        h.rank, h.confidence = rank, round(conditioned[h.pk], 4)
    Hypothesis.objects.bulk_update(order, ["rank", "confidence"])
    return order


def _human_edited(incident: Incident, field: str) -> bool:
    return incident.timeline.filter(actor_user__isnull=False, data__fields__contains=[field]).exists()


def _write_incident_text(incident: Incident, run: InvestigationRun) -> None:
    """Write incident.summary / impact only while no person has written them: the current text is
    empty, or is what an earlier run generated, or came with the alert and nobody edited it since."""
    previous = (InvestigationRun.objects.filter(incident=incident).exclude(pk=run.pk).exclude(summary="")
                .order_by("-finished_at", "-id"))
    generated_summaries = {r.summary for r in previous}
    generated_impacts = {(r.impact or {}).get("text", "") for r in previous}
    incident.refresh_from_db()
    changes = {}
    automatic = incident.source != Source.MANUAL
    for field, new, generated in (("summary", run.summary, generated_summaries),
                                  ("impact", run.impact.get("text", ""), generated_impacts)):
        current = getattr(incident, field)
        untouched = current == "" or current in generated or (automatic and not _human_edited(incident, field))
        if new and untouched and current != new:
            changes[field] = new
    if changes:
        incident_services.update_incident(incident=incident, actor=ACTOR, **changes)


# -- decisions -------------------------------------------------------------------------------------

def decide_hypothesis(*, hypothesis: Hypothesis, status: str, user, note: str = "") -> Hypothesis:
    """Confirm or reject a hypothesis (recorded on the timeline with who and when).

    Rejecting re-ranks the rest. Confirming sets the incident's root cause; the other proposed
    hypotheses stay proposed. A decision can be changed (people correct mistakes; the timeline
    keeps both); the same decision again changes nothing.
    """
    if status not in DECISIONS:
        raise ValidationError({"status": f"must be one of {', '.join(DECISIONS)}, not {status!r}"})
    if len(note) > 1000:
        raise ValidationError({"note": "at most 1000 characters"})
    with transaction.atomic():
        locked = Hypothesis.objects.select_for_update().select_related("incident").get(pk=hypothesis.pk)
        if locked.status == status:
            return locked
        previous = locked.status
        locked.status, locked.decided_by, locked.decided_at = status, user, timezone.now()
        locked.decision_note = note
        locked.save(update_fields=["status", "decided_by", "decided_at", "decision_note", "updated_at"])
        verb = "Confirmed" if status == HypothesisStatus.CONFIRMED else "Rejected"
        incident_services.append_timeline_event(
            incident=locked.incident, kind=EventKind.HYPOTHESIS, user=user,
            message=f"{verb} hypothesis: {locked.title}" + (f" — {note}" if note else ""),
            data={"hypothesis": locked.pk, "kind": locked.kind, "service": locked.service, "from": previous,
                  "to": status, "note": note, "confidence": locked.confidence})
        if status == HypothesisStatus.CONFIRMED:
            cause = locked.title + (f"\n\n{locked.description}" if locked.description else "")
            incident_services.update_incident(incident=locked.incident, user=user, root_cause=cause)
        rerank_hypotheses(locked.incident_id)
        events.publish("investigation.updated", {"incident": locked.incident_id, "run": locked.run_id,
                                                 "changed": "hypotheses", "hypothesis": locked.pk},
                       incident_id=locked.incident_id)
    locked.refresh_from_db()
    return locked


# -- changes ---------------------------------------------------------------------------------------

def record_change(*, service: Service, version: str = "", kind: str = ChangeKind.DEPLOY,
                  source: str = ChangeSource.API, author: str = "", url: str = "", description: str = "",
                  occurred_at: datetime | None = None, external_id: str | None = None,
                  user=None) -> tuple[Change, bool]:
    """Record a deploy or configuration change; idempotent on (source, external_id): the same
    external id again returns the existing change (created=False) without changing it."""
    external_id = (external_id or "").strip() or None
    change = Change(service=service, version=version, kind=kind, source=source, author=author, url=url,
                    description=description, occurred_at=occurred_at or timezone.now(), external_id=external_id,
                    recorded_by=user if getattr(user, "is_authenticated", False) else None)
    change.full_clean(exclude=["service", "recorded_by"], validate_constraints=False)
    if change.occurred_at > timezone.now() + timedelta(minutes=5):
        raise ValidationError({"occurred_at": "cannot be in the future"})
    if external_id:
        existing = Change.objects.filter(source=source, external_id=external_id).select_related("service").first()
        if existing is not None:
            return existing, False
    try:
        with transaction.atomic():
            change.save(force_insert=True)
    except IntegrityError:
        if not external_id:
            raise
        return Change.objects.select_related("service").get(source=source, external_id=external_id), False
    return change, True


def update_change(*, change: Change, **fields) -> Change:
    """Edit a recorded change (the admin uses this)."""
    allowed = {"service", "kind", "version", "description", "author", "url", "occurred_at", "external_id"}
    unknown = set(fields) - allowed
    if unknown:
        raise ValidationError({f: "cannot be changed here" for f in sorted(unknown)})
    for field, value in fields.items():
        setattr(change, field, value)
    change.full_clean()
    change.save()
    return change
