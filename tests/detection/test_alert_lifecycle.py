"""Alert state machine (pending / for / hysteresis / reopen), grouping and automatic resolution.

Observations are fed straight into detection.services, so these tests exercise the real state
machine and the real incident writes without a telemetry source; the source paths are covered
in test_rule_evaluation.py against a real Prometheus.
"""
from datetime import timedelta

import pytest
from django.utils import timezone

from detection import services
from detection.evaluation import Observation
from detection.models import Alert, AlertState, DetectionRule, RuleKind
from incidents import services as incident_services
from incidents.models import EventKind, Incident, Severity, Status

from ..factories import ServiceFactory

pytestmark = pytest.mark.django_db
T0 = timezone.now().replace(microsecond=0) - timedelta(hours=1)


@pytest.fixture
def shop():
    s = {slug: ServiceFactory(slug=slug) for slug in ["frontend", "checkout", "payment", "catalog", "billing"]}
    s["frontend"].depends_on.set([s["checkout"], s["catalog"]])
    s["checkout"].depends_on.set([s["payment"]])
    return s


@pytest.fixture
def rule(shop):
    return DetectionRule.objects.create(
        name="High error ratio", kind=RuleKind.THRESHOLD, query="x", threshold=0.05, severity=Severity.HIGH,
        for_seconds=10, recovery_hold_seconds=30, evaluation_interval_seconds=5,
    )


def step(rule, at, *series):
    """series: (service, active, value) tuples observed at T0 + `at` seconds."""
    observations = [Observation({"service": svc}, value, active) for svc, active, value in series]
    return services.apply_observations(rule=rule, observations=observations, now=T0 + timedelta(seconds=at))


def state(service_slug):
    return Alert.objects.get(labels={"service": service_slug}).state


def test_pending_until_for_duration_then_firing_opens_incident(rule):
    step(rule, 0, ("payment", True, 0.3))
    assert state("payment") == AlertState.PENDING
    assert Incident.objects.count() == 0
    step(rule, 5, ("payment", True, 0.3))
    assert state("payment") == AlertState.PENDING
    step(rule, 10, ("payment", True, 0.31))
    assert state("payment") == AlertState.FIRING
    incident = Incident.objects.get()
    assert incident.source == "rule" and incident.primary_service.slug == "payment"
    assert incident.started_at == T0  # the condition's first sighting, so MTTD covers the for-duration
    assert incident.timeline.filter(kind=EventKind.ALERT, message__startswith="FIRING").count() == 1


def test_blip_shorter_than_for_opens_nothing(rule):
    step(rule, 0, ("payment", True, 0.3))
    step(rule, 5, ("payment", False, 0.0))
    assert state("payment") == AlertState.INACTIVE
    step(rule, 10, ("payment", True, 0.3))
    assert state("payment") == AlertState.PENDING  # the for-clock restarted
    assert Incident.objects.count() == 0


def test_hysteresis_keeps_firing_through_short_clear(rule):
    step(rule, 0, ("payment", True, 0.3))
    step(rule, 10, ("payment", True, 0.3))
    step(rule, 15, ("payment", False, 0.0))
    step(rule, 30, ("payment", False, 0.0))  # 20 s clear < 30 s hold
    assert state("payment") == AlertState.FIRING
    step(rule, 35, ("payment", True, 0.4))
    step(rule, 60, ("payment", False, 0.0))  # 25 s after the last active sighting
    assert state("payment") == AlertState.FIRING
    step(rule, 65, ("payment", False, 0.0))  # 30 s: the hold has passed
    assert state("payment") == AlertState.RESOLVED
    assert Incident.objects.count() == 1
    messages = list(Incident.objects.get().timeline.values_list("message", flat=True))
    assert sum(m.startswith("FIRING") for m in messages) == 1 and sum(m.startswith("RESOLVED") for m in messages) == 1


def test_vanished_series_counts_as_clear(rule):
    step(rule, 0, ("payment", True, 0.3))
    step(rule, 10, ("payment", True, 0.3))
    step(rule, 20)
    step(rule, 45)
    assert state("payment") == AlertState.RESOLVED


def test_connected_services_group_into_one_incident_with_highest_severity(rule, shop):
    step(rule, 0, ("payment", True, 0.3))
    step(rule, 10, ("payment", True, 0.3))
    critical = DetectionRule.objects.create(name="Service down", kind=RuleKind.THRESHOLD, query="up", threshold=1,
                                            severity=Severity.CRITICAL, for_seconds=0)
    step(critical, 12, ("frontend", True, 0.0))
    incident = Incident.objects.get()
    assert incident.severity == Severity.CRITICAL
    assert set(incident.affected_services.values_list("slug", flat=True)) == {"payment", "frontend"}


def test_primary_service_follows_the_failing_dependency_and_the_title_with_it(rule, shop):
    # The callers fire first (the frontend carries the most traffic); payment, which checkout and
    # the frontend call, joins a moment later and is the likelier origin.
    step(rule, 0, ("frontend", True, 0.2))
    step(rule, 10, ("frontend", True, 0.2))
    incident = Incident.objects.get()
    assert incident.primary_service.slug == "frontend" and incident.title == "High error ratio on frontend"

    step(rule, 11, ("frontend", True, 0.2), ("checkout", True, 0.3))
    step(rule, 21, ("frontend", True, 0.2), ("checkout", True, 0.3), ("payment", True, 0.5))
    assert state("checkout") == AlertState.FIRING and state("payment") == AlertState.PENDING
    assert Incident.objects.get().primary_service.slug == "checkout"
    step(rule, 32, ("frontend", True, 0.2), ("checkout", True, 0.3), ("payment", True, 0.5))
    incident = Incident.objects.get()
    assert incident.primary_service.slug == "payment" and incident.title == "High error ratio on payment"
    moves = list(incident.timeline.filter(kind=EventKind.STATUS_CHANGE, message__startswith="Primary").values_list("message", flat=True))
    assert moves == ["Primary service frontend → checkout (frontend depends on it)",
                     "Primary service checkout → payment (checkout depends on it)"]

    # A service elsewhere in the graph that payment does not call (catalog) joins but does not take over.
    step(rule, 40, ("catalog", True, 0.4))
    step(rule, 50, ("catalog", True, 0.4))
    incident = Incident.objects.get()
    assert incident.primary_service.slug == "payment" and "catalog" in incident.affected_services.values_list("slug", flat=True)


def test_a_title_someone_edited_is_kept_when_the_primary_service_moves(rule, shop):
    step(rule, 0, ("checkout", True, 0.2))
    step(rule, 10, ("checkout", True, 0.2))
    incident = Incident.objects.get()
    incident_services.update_incident(incident=incident, actor="alice", title="Checkout is failing payments")
    step(rule, 11, ("checkout", True, 0.2), ("payment", True, 0.5))
    step(rule, 21, ("checkout", True, 0.2), ("payment", True, 0.5))
    incident.refresh_from_db()
    assert incident.primary_service.slug == "payment" and incident.title == "Checkout is failing payments"


def test_unconnected_service_opens_its_own_incident(rule):
    step(rule, 0, ("payment", True, 0.3), ("billing", True, 0.2))
    step(rule, 10, ("payment", True, 0.3), ("billing", True, 0.2))
    assert Incident.objects.count() == 2


def test_auto_resolve_mitigates_then_resolves_after_hold_and_reopens_on_new_firing(rule, settings):
    settings.DETECTION_AUTO_RESOLVE_HOLD_SECONDS = {"high": 60}
    step(rule, 0, ("payment", True, 0.3))
    step(rule, 10, ("payment", True, 0.3))
    step(rule, 15, ("payment", False, 0.0))
    step(rule, 50, ("payment", False, 0.0))
    incident = Incident.objects.get()
    assert state("payment") == AlertState.RESOLVED
    services.auto_resolve_incidents(now=T0 + timedelta(seconds=55))
    incident.refresh_from_db()
    assert incident.status == Status.MITIGATED
    services.auto_resolve_incidents(now=T0 + timedelta(seconds=80))  # 30 s after clearing < 60 s hold
    incident.refresh_from_db()
    assert incident.status == Status.MITIGATED
    services.auto_resolve_incidents(now=T0 + timedelta(seconds=111))
    incident.refresh_from_db()
    assert incident.status == Status.RESOLVED
    notes = list(incident.timeline.filter(kind=EventKind.STATUS_CHANGE).values_list("message", flat=True))
    assert any("every alert stayed resolved for 60s" in n for n in notes)

    # Within the reopen window the same problem reopens the same incident.
    step(rule, 200, ("payment", True, 0.5))
    step(rule, 210, ("payment", True, 0.5))
    assert Incident.objects.count() == 1
    incident.refresh_from_db()
    assert incident.status == Status.OPEN and incident.reopened_count == 1


def test_firing_again_while_mitigated_goes_back_to_investigating(rule):
    step(rule, 0, ("payment", True, 0.3))
    step(rule, 10, ("payment", True, 0.3))
    step(rule, 45, ("payment", False, 0.0))
    services.auto_resolve_incidents(now=T0 + timedelta(seconds=46))
    assert Incident.objects.get().status == Status.MITIGATED
    step(rule, 50, ("payment", True, 0.3))
    step(rule, 60, ("payment", True, 0.3))
    assert Incident.objects.get().status == Status.INVESTIGATING


def test_manual_incidents_are_never_auto_resolved(rule):
    incident_services.create_incident(title="Human-declared", severity=Severity.HIGH)
    services.auto_resolve_incidents(now=timezone.now())
    assert Incident.objects.get().status == Status.OPEN


def test_severity_with_negative_hold_never_auto_resolves(rule, settings):
    settings.DETECTION_AUTO_RESOLVE_HOLD_SECONDS = {"high": -1}
    step(rule, 0, ("payment", True, 0.3))
    step(rule, 10, ("payment", True, 0.3))
    step(rule, 45, ("payment", False, 0.0))
    services.auto_resolve_incidents(now=T0 + timedelta(hours=2))
    assert Incident.objects.get().status == Status.OPEN
