"""Real processes, real time (short delays): a Celery worker and beat deliver, retry with backoff
and escalate; a worker restart loses no escalation and sends none twice."""
import time
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from incidents import services as incident_services
from notifications.models import (Delivery, DeliveryStatus, DestinationKind, EscalationPolicy, EscalationState,
                                  EscalationStep, ScheduledEscalation)
from reliability_studio.celery import app

from ..servers import CeleryBeat, CeleryWorker, server_env
from .conftest import route_to
from .receivers import HTTPReceiver, check_slack

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def wait_for(predicate, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    pytest.fail(f"timed out after {timeout}s waiting for {what}")


@pytest.fixture
def worker_env():
    env = server_env(connection.settings_dict["NAME"], NOTIFICATIONS_ALLOW_LOOPBACK="true",
                     NOTIFICATIONS_TICK_SECONDS="0.5", NOTIFICATIONS_RETRY_BACKOFF_SECONDS="0.3",
                     NOTIFICATIONS_BASE_URL="http://testserver", GRAFANA_URL="")
    # This process sends its tasks to the test worker's queue instead of running them inline.
    before = {"task_always_eager": app.conf.task_always_eager, "task_default_queue": app.conf.task_default_queue}
    app.conf.update(task_always_eager=False, task_default_queue=env["CELERY_TASK_DEFAULT_QUEUE"])
    yield env
    app.conf.update(before)


def test_retries_back_off_on_a_real_worker(make_destination, payments, worker_env):
    receiver = HTTPReceiver(check_slack)
    receiver.fail(2, status=503)
    worker = CeleryWorker(worker_env, concurrency=2)
    try:
        route_to(make_destination(DestinationKind.SLACK, secret=receiver.url))
        incident_services.create_incident(title="Payment errors", severity="high", primary_service=payments)
        receiver.wait_for(1, timeout=30)
        delivery = wait_for(lambda: Delivery.objects.filter(status=DeliveryStatus.DELIVERED).first(), 10, "delivered")
    finally:
        worker.stop()
        receiver.stop()
    assert delivery.attempts == 3 and len(receiver.requests) == 3
    gaps = [b["at"] - a["at"] for a, b in zip(receiver.requests, receiver.requests[1:])]
    assert gaps[0] >= 0.3 and gaps[1] >= 0.6  # 0.3 s, then 0.6 s


def test_escalation_in_real_time_survives_a_worker_restart(make_destination, payments, worker_env, tmp_path):
    first_line, oncall, secondary = (HTTPReceiver(check_slack) for _ in range(3))
    route_to(make_destination(DestinationKind.SLACK, name="channel", secret=first_line.url))
    policy = EscalationPolicy.objects.create(name="payments", team="payments")
    EscalationStep.objects.create(policy=policy, position=1, delay_seconds=3).destinations.set(
        [make_destination(DestinationKind.SLACK, name="oncall", secret=oncall.url)])
    EscalationStep.objects.create(policy=policy, position=2, delay_seconds=60).destinations.set(
        [make_destination(DestinationKind.SLACK, name="secondary", secret=secondary.url)])
    beat = CeleryBeat(worker_env, str(tmp_path / "beat"))
    worker = CeleryWorker(worker_env, concurrency=4)
    try:
        incident = incident_services.create_incident(title="Payment errors", severity="high", primary_service=payments)
        first_line.wait_for(1, timeout=30)
        level1 = wait_for(lambda: ScheduledEscalation.objects.filter(incident=incident, level=1).first(), 5, "schedule")
        worker.stop()  # the worker dies before level 1 is due; beat keeps queueing ticks
        wait_for(lambda: timezone.now() > level1.due_at + timedelta(seconds=1), 10, "level 1 to be overdue")
        worker = CeleryWorker(worker_env, concurrency=4)
        oncall.wait_for(1, timeout=30)
        assert ScheduledEscalation.objects.get(pk=level1.pk).status == EscalationState.FIRED
        incident_services.acknowledge_incident(incident=incident, user=None, note="on it")
        level2 = wait_for(lambda: ScheduledEscalation.objects.filter(level=2, status=EscalationState.CANCELLED).first(),
                          15, "level 2 to be cancelled by the acknowledgement")
        # The acknowledgement reaches the channels that were told.
        wait_for(lambda: Delivery.objects.filter(event="acknowledged", status=DeliveryStatus.DELIVERED).count() == 2,
                 15, "the acknowledgement to be announced")
    finally:
        worker.stop()
        beat.stop()
        for receiver in (first_line, oncall, secondary):
            receiver.stop()
    assert len(oncall.requests) == 2  # level 1 once, then the acknowledgement
    assert secondary.requests == [] and level2.reason == "acknowledged"
    assert Delivery.objects.filter(event="escalation").count() == 1
