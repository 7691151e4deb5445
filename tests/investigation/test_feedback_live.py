"""Responders' decisions on past incidents re-weight the live ranking of similar ones."""
import pytest
from django.utils import timezone

from investigation import runner, services
from investigation.models import HypothesisStatus
from investigation.rca import RankedService

from .factories import HypothesisFactory, InvestigationRunFactory

pytestmark = pytest.mark.django_db

# A past incident's stored ranking: database and payment both anomalous with errors.
PAST = [
    {"service": "database", "score": 9.0, "signals": {"metrics": 12.0}, "evidence": "error"},
    {"service": "payment", "score": 8.5, "signals": {"metrics": 11.0}, "evidence": "error"},
    {"service": "catalog", "score": 0.3, "signals": {"metrics": 0.5}, "evidence": "other"},
]


def _ranking():
    return [RankedService(service=r["service"], score=r["score"], onset=None, top_metric=None,
                          signals=dict(r["signals"]), evidence=r["evidence"]) for r in PAST]


def _decide(service: str, status: str):
    run = InvestigationRunFactory(ranking=PAST)
    return HypothesisFactory(incident=run.incident, run=run, service=service, status=status,
                             decided_at=timezone.now())


def test_a_rejection_elsewhere_demotes_that_service_in_a_similar_incident():
    _decide("database", HypothesisStatus.REJECTED)
    _decide("payment", HypothesisStatus.CONFIRMED)
    current = InvestigationRunFactory()
    feedback = services._responder_feedback(current.incident_id)
    assert [r.service for r in feedback.apply(_ranking())][:2] == ["payment", "database"]


def test_decisions_on_the_incident_itself_and_undecided_ones_are_not_feedback():
    current = InvestigationRunFactory(ranking=PAST)
    HypothesisFactory(incident=current.incident, run=current, service="database",
                      status=HypothesisStatus.REJECTED, decided_at=timezone.now())
    _decide("database", HypothesisStatus.PROPOSED)
    feedback = services._responder_feedback(current.incident_id)
    assert feedback.records == ()
    assert [r.service for r in feedback.apply(_ranking())][0] == "database"


def test_the_stored_ranking_keeps_what_its_signature_needs():
    assert runner.stored_signature(PAST) == "database:error+payment:error"
