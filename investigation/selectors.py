"""Reads of the investigation: which run a page shows, its evidence, the ranked hypotheses.

Pages and the review render only what these return: stored rows and snapshots, never telemetry.
"""
from __future__ import annotations

from django.db.models import Prefetch

from incidents.models import Incident

from .models import Evidence, EvidenceKind, Hypothesis, HypothesisStatus, InvestigationRun, RunStatus

FINISHED_OK = (RunStatus.COMPLETE, RunStatus.PARTIAL)


def latest_run(incident: Incident) -> InvestigationRun | None:
    """The newest run, whatever its state (the progress panel shows it)."""
    return incident.investigation_runs.order_by("-created_at", "-id").first()


def latest_complete_run(incident: Incident) -> InvestigationRun | None:
    """The newest run that finished with evidence (complete, or partial: some sources unavailable)."""
    return incident.investigation_runs.filter(status__in=FINISHED_OK).order_by("-finished_at", "-created_at", "-id").first()


def evidence_run(incident: Incident) -> InvestigationRun | None:
    """The run whose evidence the page shows: the latest finished one, so a re-run in progress does
    not blank the panel; before any run has finished, the one collecting (evidence appears live)."""
    return latest_complete_run(incident) or latest_run(incident)


def run_evidence(run: InvestigationRun | None) -> dict[str, list[Evidence]]:
    """Evidence per kind (every kind present as a key), strongest first."""
    grouped: dict[str, list[Evidence]] = {kind: [] for kind in EvidenceKind.values}
    if run is None:
        return grouped
    for item in run.evidence.order_by("kind", "-score", "service", "id"):
        grouped.setdefault(item.kind, []).append(item)
    return grouped


def ranked_hypotheses(incident: Incident) -> tuple[list[Hypothesis], list[Hypothesis]]:
    """(standing, rejected): confirmed and proposed ones by rank, then the rejected ones, newest
    decision first. The rank is the services' (re-ranked after every decision); confirmed first."""
    rows = list(
        incident.hypotheses.select_related("decided_by").prefetch_related(
            Prefetch("evidence", queryset=Evidence.objects.order_by("-score", "id"))
        )
    )
    rejected = sorted((h for h in rows if h.status == HypothesisStatus.REJECTED),
                      key=lambda h: (h.decided_at is None, -(h.decided_at.timestamp() if h.decided_at else 0), h.pk))
    standing = sorted((h for h in rows if h.status != HypothesisStatus.REJECTED),
                      key=lambda h: (h.status != HypothesisStatus.CONFIRMED, h.rank or 10**6, -h.confidence, h.pk))
    return standing, rejected


def confirmed_hypothesis(incident: Incident) -> Hypothesis | None:
    return incident.hypotheses.filter(status=HypothesisStatus.CONFIRMED).order_by("-decided_at", "rank", "id").first()
