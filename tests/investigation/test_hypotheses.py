"""Hypotheses from a ranking and evidence; decisions and re-ranking; re-runs never undo a decision;
the summary and impact of a fixed evidence set are always the same words."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone

from incidents.models import EventKind
from investigation import hypotheses, services, summary
from investigation.models import EvidenceKind, Hypothesis, HypothesisKind, HypothesisStatus, Trigger

from .factories import EvidenceFactory, HypothesisFactory, InvestigationRunFactory

pytestmark = pytest.mark.django_db
T0 = datetime(2026, 1, 31, 10, 2, 13, tzinfo=UTC).timestamp()
SCOPE = {"services": [{"slug": "frontend", "role": "primary"}, {"slug": "checkout", "role": "affected"},
                      {"slug": "payment", "role": "affected"}],
         "edges": [["frontend", "checkout"], ["checkout", "payment"]]}
RANKING = [
    {"service": "payment", "score": 9.0, "confidence": 0.82, "onset": T0, "top_metric": "error_ratio", "signals": {}},
    {"service": "checkout", "score": 4.0, "confidence": 0.12, "onset": T0 + 40, "top_metric": "error_ratio",
     "signals": {}},
    {"service": "frontend", "score": 2.0, "confidence": 0.06, "onset": T0 + 41, "top_metric": "latency_p95",
     "signals": {}},
]


@pytest.fixture
def evidence_set():
    run = InvestigationRunFactory()
    make = lambda **kw: EvidenceFactory(run=run, **kw)  # noqa: E731
    items = [
        make(service="payment", score=30.0, finding="payment error ratio 0.1 % → 48.0 %"),
        make(kind=EvidenceKind.LOGS, source="loki", service="payment", score=12.0, query='{service="payment"}',
             snapshot={"templates": [{"template": "connection pool exhausted", "count": 312, "new": True}]},
             finding="new log template 'connection pool exhausted' ×312"),
        make(kind=EvidenceKind.KUBERNETES, source="kubernetes", service="payment", score=4.0, query="/api/v1/pods",
             snapshot={"signals": {"restarted_in_window": ["payment-7f9"]}},
             finding="pod payment-7f9 restarted 3 times"),
        make(service="checkout", score=8.0, finding="checkout error ratio up"),
        make(kind=EvidenceKind.TRACES, source="tempo", service="", status="not_configured", query="",
             snapshot={}, finding="Tempo is not configured"),
        make(service="frontend", query='sum(increase(http_requests_total{service="frontend",code=~"5.."}[300s]))',
             snapshot={"metric": "failed_requests", "value": 1234.4}, score=0.0, finding="frontend failed"),
        make(service="payment", query='sum(increase(http_requests_total{service="payment",code=~"5.."}[300s]))',
             snapshot={"metric": "failed_requests", "value": 500.0}, score=0.0, finding="payment failed"),
    ]
    return run, items


def test_proposals_take_the_most_specific_kind_and_a_confidence_in_0_1(evidence_set):
    _run, items = evidence_set
    proposals = hypotheses.propose(ranking=RANKING, evidence=items, scope=SCOPE, detection_time=T0 + 45)
    kinds = {p.service: p.kind for p in proposals}
    assert kinds == {"payment": HypothesisKind.CRASH_LOOP, "checkout": HypothesisKind.DEPENDENCY_FAILURE,
                     "frontend": HypothesisKind.LATENCY}
    assert all(0 <= p.prior <= 1 for p in proposals) and sum(p.prior for p in proposals) <= 1.0001
    payment = proposals[0]
    assert payment.prior > 0.82, "restarts and a new error template corroborate the ranking"
    assert payment.services == ["payment", "checkout"], "the anomalous caller is involved"
    assert payment.evidence_ids[0] == items[0].pk and items[1].pk in payment.evidence_ids
    assert payment.next_step


def test_a_service_outside_the_catalog_scope_is_an_external_dependency():
    ranking = [{"service": "stripe-api", "score": 5.0, "confidence": 0.7, "onset": T0, "top_metric": "error_ratio"}]
    [proposal] = hypotheses.propose(ranking=ranking, evidence=[], scope=SCOPE, detection_time=T0)
    assert proposal.kind == HypothesisKind.EXTERNAL_DEPENDENCY and "status page" in proposal.next_step


def test_conditioning_on_rejections_is_order_free():
    priors = {1: 0.6, 2: 0.3, 3: 0.1}
    assert hypotheses.condition_on_rejections(priors, {1}) == pytest.approx({1: 0.6, 2: 0.75, 3: 0.25})
    both = hypotheses.condition_on_rejections(priors, {1, 2})
    assert both[3] == pytest.approx(1.0)


def test_the_summary_of_a_fixed_evidence_set_is_always_the_same(evidence_set):
    run, items = evidence_set
    ranked = [HypothesisFactory(incident=run.incident, service="payment", confidence=0.82, rank=1),
              HypothesisFactory(incident=run.incident, service="checkout", confidence=0.12, rank=2)]
    text = summary.build_summary(ranking=RANKING, evidence=items, hypotheses=ranked)
    assert text == ("payment errors began 10:02:13 UTC, 40 s before checkout's; "
                    "new log template 'connection pool exhausted' ×312; pod payment-7f9 restarted 3 times; "
                    "most likely cause: payment (0.82); not available: tempo (not configured)")
    assert summary.build_summary(ranking=RANKING, evidence=list(reversed(items)), hypotheses=ranked) == text


def test_impact_counts_failed_requests_at_the_entry_points_with_the_queries(evidence_set):
    _run, items = evidence_set
    impact = summary.build_impact(scope=SCOPE, evidence=items, blast_radius=[("mobile", 1)])
    assert impact["failed_requests"] == 1234 and impact["failed_requests_counted_at"] == ["frontend"]
    assert impact["failed_requests_by_service"] == {"frontend": 1234, "payment": 500}
    assert 'code=~"5.."' in impact["failed_requests_queries"]["frontend"]
    assert [s["slug"] for s in impact["services"]] == ["frontend", "checkout", "payment", "mobile"]
    assert impact["slos"] == []
    assert impact["text"].startswith("Services affected or in the blast radius: frontend, checkout, payment, mobile.")


# -- decisions and re-runs through the workflow -------------------------------------------------------

def run_fixed(catalog, incident, monkeypatch):
    from investigation.collectors import registry

    from .test_workflow import FixedMetrics

    monkeypatch.setattr(registry, "collectors", lambda: [FixedMetrics(), registry.ChangesCollector()])
    run = services.start_investigation(incident=incident, trigger=Trigger.MANUAL, queue=False)
    return services.execute_run(run.pk)


def test_a_rerun_updates_hypotheses_in_place_and_never_undoes_a_decision(investigation_settings, demo_catalog,
                                                                         monkeypatch, responder):
    from .test_workflow import open_incident

    incident = open_incident(demo_catalog, started_at=timezone.now() - timedelta(seconds=40))
    first = run_fixed(demo_catalog, incident, monkeypatch)
    rows = {h.service: h for h in Hypothesis.objects.filter(incident=incident)}
    assert rows["payment"].rank == 1 and rows["payment"].run == first
    rejected = services.decide_hypothesis(hypothesis=rows["payment"], status=HypothesisStatus.REJECTED,
                                          user=responder, note="payment was fine")
    assert rejected.decided_by == responder and rejected.decided_at is not None
    others = Hypothesis.objects.filter(incident=incident).exclude(pk=rejected.pk).order_by("rank")
    assert others.first().rank == 1, "the next one moves up"
    assert sum(h.confidence for h in others) == pytest.approx(1.0, abs=0.01) or all(h.confidence <= 1 for h in others)

    second = run_fixed(demo_catalog, incident, monkeypatch)
    after = {h.service: h for h in Hypothesis.objects.filter(incident=incident)}
    assert set(after) == set(rows) and {h.pk for h in after.values()} == {h.pk for h in rows.values()}, "in place"
    assert after["payment"].status == HypothesisStatus.REJECTED and after["payment"].decided_by == responder
    assert after["payment"].run == second and after["payment"].rank == len(after), "rejected ranks last"
    entry = incident.timeline.get(kind=EventKind.HYPOTHESIS)
    assert entry.actor == responder.username and "payment was fine" in entry.message


def test_generated_summary_is_written_to_the_incident_until_a_person_edits_it(investigation_settings, demo_catalog,
                                                                              monkeypatch, responder):
    from incidents import services as incidents

    from .test_workflow import open_incident

    incident = open_incident(demo_catalog, started_at=timezone.now() - timedelta(seconds=40))
    run = run_fixed(demo_catalog, incident, monkeypatch)
    incident.refresh_from_db()
    assert incident.summary == run.summary and incident.impact == run.impact["text"]
    assert incident.timeline.filter(actor="investigation", message__startswith="Updated summary").exists()

    incidents.update_incident(incident=incident, user=responder, summary="Payment DB pool too small; fixed.")
    run_fixed(demo_catalog, incident, monkeypatch)
    incident.refresh_from_db()
    assert incident.summary == "Payment DB pool too small; fixed.", "a person's words are kept"
    assert incident.impact.startswith("Services affected"), "impact nobody edited still follows the runs"


def test_impact_names_the_slos_touched_with_the_budget_this_incident_used(evidence_set):
    slo = {"name": "payment availability", "service": "payment", "consumed by this incident": "3.20 % of the budget",
           "budget left": "61.0 %", "objective": "99.9 % over 30 d", "data": {"consumed": 0.032}}
    scope = {"services": [{"slug": "payment", "role": "primary"}], "edges": []}
    impact = summary.build_impact(scope=scope, evidence=[], blast_radius=[], slos=[slo])
    assert impact["slos"] == [slo]
    assert ("SLOs touched: payment availability (99.9 % over 30 d): 3.20 % of the budget used, 61.0 % left."
            in impact["text"])


@pytest.mark.django_db
def test_the_slos_touched_are_the_incident_services_slos_with_their_stored_consumption():
    from slos.models import SLO, IncidentBudgetImpact

    from ..factories import IncidentFactory, ServiceFactory

    payment, catalog = ServiceFactory(slug="payment"), ServiceFactory(slug="catalog")
    incident = IncidentFactory(primary_service=payment)
    slo = SLO.objects.create(service=payment, name="payment availability", slug="payment-availability",
                             objective=99.9, window_days=30,
                             budget_remaining=0.61)
    SLO.objects.create(service=catalog, name="catalog availability", slug="catalog-availability", objective=99.5,
                       window_days=7)
    IncidentBudgetImpact.objects.create(incident=incident, slo=slo, start=incident.started_at,
                                        end=timezone.now(), consumed=0.032)
    touched = services._slos_touched(incident)
    assert [(t["name"], t["consumed by this incident"], t["budget left"]) for t in touched] == [
        ("payment availability", "3.20 % of the budget", "61.0 %")]
