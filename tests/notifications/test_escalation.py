"""Escalation with a controllable clock: levels fire in turn until acknowledged or resolved, each
once, even with several ticks racing."""
import threading
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from incidents import services as incident_services
from notifications import escalation
from notifications.models import (Delivery, DestinationKind, EscalationPolicy, EscalationState, EscalationStep,
                                  ScheduledEscalation)

from .conftest import route_to


@pytest.fixture
def policy(make_destination):
    first = make_destination(DestinationKind.EMAIL, name="primary-oncall", recipients="primary@example.com")
    second = make_destination(DestinationKind.EMAIL, name="secondary-oncall", recipients="secondary@example.com")
    policy = EscalationPolicy.objects.create(name="payments", team="payments")
    EscalationStep.objects.create(policy=policy, position=1, delay_seconds=300).destinations.set([first])
    EscalationStep.objects.create(policy=policy, position=2, delay_seconds=600).destinations.set([second])
    return policy


def _levels(incident):
    return sorted(Delivery.objects.filter(incident=incident, event="escalation").values_list("destination_name", "level"))


def test_levels_fire_in_turn_until_acknowledged(policy, slack, opened, committed, responder):
    route_to(slack)
    incident = opened()
    start = timezone.now()
    rows = list(ScheduledEscalation.objects.filter(incident=incident).order_by("level"))
    assert [r.level for r in rows] == [1, 2]
    assert abs((rows[1].due_at - rows[0].due_at).total_seconds() - 600) < 1
    with committed():
        escalation.fire_due_escalations(now=start + timedelta(seconds=290))
    assert _levels(incident) == []
    with committed():
        escalation.fire_due_escalations(now=start + timedelta(seconds=305))
    assert _levels(incident) == [("primary-oncall", 1)]
    assert incident.timeline.filter(message__startswith="Escalated to level 1 of payments").exists()
    with committed():
        incident_services.acknowledge_incident(incident=incident, user=responder)
    with committed():
        escalation.fire_due_escalations(now=start + timedelta(seconds=2000))
    assert _levels(incident) == [("primary-oncall", 1)]  # the second level never fired
    assert ScheduledEscalation.objects.get(level=2).status == EscalationState.CANCELLED


def test_resolution_stops_escalation(policy, opened, committed, responder):
    incident = opened()
    with committed():
        incident_services.transition_incident(incident=incident, to="resolved", user=responder)
    with committed():
        escalation.fire_due_escalations(now=timezone.now() + timedelta(hours=1))
    assert _levels(incident) == []
    assert set(ScheduledEscalation.objects.values_list("reason", flat=True)) == {"resolved"}


def test_teams_without_a_policy_use_the_default_one(make_destination, opened, db):
    from incidents.models import Service

    fallback = make_destination(DestinationKind.EMAIL, name="sre", recipients="sre@example.com")
    default = EscalationPolicy.objects.create(name="default", team="")
    EscalationStep.objects.create(policy=default, position=1, delay_seconds=60).destinations.set([fallback])
    other = Service.objects.create(slug="catalog", name="Catalog", owner_team="shop")
    incident = opened(service=other)
    assert ScheduledEscalation.objects.get().incident == incident


@pytest.mark.django_db(transaction=True)
def test_concurrent_ticks_fire_each_level_once(policy, payments, settings, django_capture_on_commit_callbacks):
    from tests.factories import IncidentFactory

    incidents = [IncidentFactory(primary_service=payments) for _ in range(20)]
    for incident in incidents:
        escalation.schedule_escalation(incident=incident, start=timezone.now() - timedelta(hours=1))
    settings.CELERY_TASK_ALWAYS_EAGER = True
    barrier = threading.Barrier(6)
    errors = []

    def tick():
        try:
            barrier.wait()
            escalation.fire_due_escalations(limit=7)
            escalation.fire_due_escalations(limit=7)
            escalation.fire_due_escalations(limit=100)
        except Exception as exc:  # collected and asserted below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=tick) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    assert ScheduledEscalation.objects.filter(status=EscalationState.FIRED).count() == 40
    assert Delivery.objects.filter(event="escalation").count() == 40  # one per incident and level
