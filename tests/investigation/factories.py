"""Factories for the investigation app (rows only; behaviour tests go through investigation.services)."""
import factory
from django.utils import timezone

from investigation.models import (
    Change,
    ChangeKind,
    ChangeSource,
    Evidence,
    EvidenceKind,
    EvidenceStatus,
    Hypothesis,
    HypothesisKind,
    HypothesisStatus,
    InvestigationRun,
    RunStatus,
    Trigger,
)

from ..factories import IncidentFactory, ServiceFactory


class InvestigationRunFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = InvestigationRun

    incident = factory.SubFactory(IncidentFactory)
    trigger = Trigger.MANUAL
    trigger_key = factory.Sequence(lambda n: f"manual:factory-{n}")
    status = RunStatus.COMPLETE
    started_at = factory.LazyFunction(timezone.now)
    finished_at = factory.LazyFunction(timezone.now)


class EvidenceFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Evidence

    run = factory.SubFactory(InvestigationRunFactory)
    kind = EvidenceKind.METRICS
    source = "prometheus"
    service = "payment"
    status = EvidenceStatus.OK
    query = factory.Sequence(lambda n: f'sum(rate(http_requests_total{{service="payment",n="{n}"}}[30s]))')
    snapshot = factory.LazyFunction(lambda: {"metric": "error_ratio", "start": 0, "step": 5, "values": [0.0, 0.5]})
    snapshot_bytes = 64
    score = 5.0
    finding = "payment error ratio rose"


class HypothesisFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Hypothesis

    incident = factory.SubFactory(IncidentFactory)
    run = None
    kind = HypothesisKind.DEPENDENCY_FAILURE
    service = factory.Sequence(lambda n: f"svc-h{n}")
    services = factory.LazyAttribute(lambda o: [o.service])
    title = factory.LazyAttribute(lambda o: f"{o.service} is failing")
    confidence = 0.5
    score = 1.0
    rank = 1
    status = HypothesisStatus.PROPOSED
    next_step = "Look at its error logs."


class ChangeFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Change

    service = factory.SubFactory(ServiceFactory)
    kind = ChangeKind.DEPLOY
    source = ChangeSource.API
    version = factory.Sequence(lambda n: f"v1.{n}.0")
    author = "ci"
    occurred_at = factory.LazyFunction(timezone.now)
    external_id = None
