"""Delivery: bounded retries with backoff, a failing destination never blocks the others, nothing
is sent twice, and the log is on the incident's timeline."""
from datetime import timedelta

import pytest
from django.utils import timezone

from notifications import flows, services
from notifications.models import Delivery, DeliveryStatus, DestinationKind
from notifications.services import TIMELINE_KIND

from .conftest import route_to


def _sweep(now):
    """What beat's tick does, with a controllable clock."""
    for delivery_id in services.due_delivery_ids(now=now):
        services.attempt_delivery(delivery_id=delivery_id, now=now)


def test_failing_destination_is_retried_then_marked_failed_without_blocking_the_others(
        slack, slack_receiver, webhook, webhook_receiver, opened, settings):
    slack_receiver.always_fail = 503
    route_to(slack, webhook)
    incident = opened()
    webhook_receiver.wait_for(1)  # the healthy destination was not held up
    failing = Delivery.objects.get(destination=slack)
    assert failing.status == DeliveryStatus.RETRYING and failing.attempts == 1
    now = timezone.now()
    waits = []
    while failing.status == DeliveryStatus.RETRYING:
        waits.append(round((failing.next_attempt_at - now).total_seconds()))
        _sweep(now + timedelta(seconds=0.5))  # not due yet: nothing happens
        assert Delivery.objects.get(pk=failing.pk).attempts == failing.attempts
        now = failing.next_attempt_at
        _sweep(now)
        failing.refresh_from_db()
    assert failing.status == DeliveryStatus.FAILED
    assert failing.attempts == settings.NOTIFICATIONS_MAX_ATTEMPTS == 3
    assert waits == [1, 2]  # exponential backoff: 1 s, then 2 s
    assert len(slack_receiver.requests) == 3 and len(webhook_receiver.requests) == 1
    assert [h["code"] for h in failing.detail["history"]] == [503, 503, 503]
    log = list(incident.timeline.filter(kind=TIMELINE_KIND, data__notification=True).values_list("message", flat=True))
    assert "Notified Generic webhook 'webhook-dest': Incident opened" in log
    assert any(m.startswith("Notification to Slack 'slack-dest' failed after 3 attempts: HTTP 503") for m in log)


def test_a_destination_that_recovers_is_delivered_after_retries(slack, slack_receiver, opened):
    slack_receiver.fail(2, status=500)
    route_to(slack)
    incident = opened()
    now = timezone.now()
    for _ in range(2):
        now += timedelta(seconds=10)
        _sweep(now)
    delivery = Delivery.objects.get()
    assert delivery.status == DeliveryStatus.DELIVERED and delivery.attempts == 3
    assert len(slack_receiver.accepted) == 1
    assert incident.timeline.filter(message="Notified Slack 'slack-dest': Incident opened after 3 attempts").exists()


def test_client_errors_are_not_retried(slack, slack_receiver, opened):
    slack_receiver.always_fail = 404
    route_to(slack)
    opened()
    delivery = Delivery.objects.get()
    assert delivery.status == DeliveryStatus.FAILED and delivery.attempts == 1 and delivery.response_code == 404


def test_the_same_hook_twice_sends_once(slack, slack_receiver, opened, committed):
    route_to(slack)
    incident = opened()
    with committed():
        flows.incident_opened(incident_id=incident.pk)  # a duplicated delivery of the hook
    slack_receiver.wait_for(1)
    assert Delivery.objects.count() == 1 and len(slack_receiver.requests) == 1


def test_a_delivery_claimed_elsewhere_is_not_sent_again(slack, slack_receiver, opened):
    route_to(slack)
    opened()
    delivery = Delivery.objects.get()
    assert services.attempt_delivery(delivery_id=delivery.pk) is None  # already delivered: nothing
    Delivery.objects.filter(pk=delivery.pk).update(status=DeliveryStatus.SENDING, claimed_at=timezone.now())
    assert services.attempt_delivery(delivery_id=delivery.pk) is None  # in flight on another worker
    assert len(slack_receiver.requests) == 1
    # …but an attempt abandoned by a dead worker is picked up once its lease has passed.
    later = timezone.now() + timedelta(seconds=200)
    assert services.due_delivery_ids(now=later) == [delivery.pk]


@pytest.mark.parametrize("url", ["http://169.254.169.254/latest/meta-data", "http://[fd00:ec2::254]/",
                                 "http://[fe80::1]/x"])
def test_link_local_and_metadata_addresses_are_refused(make_destination, url):
    from django.core.exceptions import ValidationError

    with pytest.raises(ValidationError) as error:
        make_destination(DestinationKind.WEBHOOK, url=url, secret="0123456789abcdef0123")
    assert "link-local or metadata" in str(error.value)


def test_link_local_is_refused_at_send_time_too(make_destination, opened, settings):
    """A name that resolves to a metadata address is caught when the call is made."""
    destination = make_destination(DestinationKind.WEBHOOK, url="http://localhost:9/hook", secret="0123456789abcdef0123")
    route_to(destination)
    settings.NOTIFICATIONS_ALLOW_LOOPBACK = False
    opened()
    delivery = Delivery.objects.get()
    assert delivery.status == DeliveryStatus.FAILED and "loopback" in delivery.last_error


def test_loopback_is_refused_unless_allowed(make_destination, settings):
    from django.core.exceptions import ValidationError

    settings.NOTIFICATIONS_ALLOW_LOOPBACK = False
    with pytest.raises(ValidationError, match="loopback"):
        make_destination(DestinationKind.SLACK, secret="http://127.0.0.1:8080/hook")
