"""Routing by service, team, severity and labels; the default route; quiet hours."""
from datetime import datetime, time, timedelta
from datetime import timezone as dt_timezone

from incidents.models import Service
from notifications import routing, services
from notifications.models import Delivery, DeliveryStatus, DestinationKind, QuietHours

from .conftest import route_to


def _named(make_destination, *names):
    return [make_destination(DestinationKind.EMAIL, name=n, recipients=f"{n}@example.com") for n in names]


def test_route_selection(make_destination, payments, db):
    from tests.factories import IncidentFactory

    pay, crit, lab, default, other = _named(make_destination, "pay", "crit", "lab", "default", "other")
    catalog = Service.objects.create(slug="catalog", name="Catalog", owner_team="shop")
    route_to(pay, name="payments team", teams=["payments"])
    route_to(crit, name="critical", severities=["critical"])
    route_to(lab, name="eu", labels={"region": "eu", "env": "*"})
    route_to(other, name="catalog", services=[catalog])
    route_to(default, name="default", is_default=True)

    def names(**kw):
        incident = IncidentFactory(**kw)
        return sorted(d.name for d in routing.destinations_for(incident))

    assert names(primary_service=payments, severity="high") == ["pay"]
    assert names(primary_service=payments, severity="critical") == ["crit", "pay"]
    assert names(primary_service=catalog, severity="low", labels={"region": "eu", "env": "prod"}) == ["lab", "other"]
    assert names(primary_service=None, severity="low", labels={"region": "eu"}) == ["default"]  # env missing
    assert names(primary_service=None, severity="medium") == ["default"]


def test_stop_ends_the_evaluation(make_destination, payments, db):
    from tests.factories import IncidentFactory

    first, second = _named(make_destination, "first", "second")
    route_to(first, name="first", teams=["payments"], stop=True, position=1)
    route_to(second, name="second", position=2)
    assert [d.name for d in routing.destinations_for(IncidentFactory(primary_service=payments))] == ["first"]


def test_disabled_destinations_are_skipped(make_destination, payments, db):
    from tests.factories import IncidentFactory

    on, off = _named(make_destination, "on", "off")
    off.enabled = False
    off.save()
    route_to(on, off)
    assert [d.name for d in routing.destinations_for(IncidentFactory(primary_service=payments))] == ["on"]


def test_quiet_hours_window_overnight_in_the_team_time_zone(payments, db):
    from tests.factories import IncidentFactory

    QuietHours.objects.create(team="payments", start=time(22), end=time(7), timezone="Europe/Paris",
                              max_severity="medium")
    low = IncidentFactory(primary_service=payments, severity="low")
    high = IncidentFactory(primary_service=payments, severity="high")
    night = datetime(2025, 1, 15, 23, 30, tzinfo=dt_timezone.utc)  # 00:30 in Paris
    assert routing.quiet_until(low, night) == datetime(2025, 1, 16, 6, 0, tzinfo=dt_timezone.utc)
    assert routing.quiet_until(high, night) is None  # above max_severity: never held
    assert routing.quiet_until(low, datetime(2025, 1, 15, 12, tzinfo=dt_timezone.utc)) is None


def test_quiet_hours_hold_low_severity_until_they_end(slack, slack_receiver, opened, payments):
    from django.utils import timezone

    now = timezone.now()
    start = (now - timedelta(hours=1)).time()
    end = (now + timedelta(hours=1)).time()
    QuietHours.objects.create(team="payments", start=start, end=end, timezone="UTC", max_severity="low")
    route_to(slack)
    incident = opened(severity="low")
    delivery = Delivery.objects.get()
    assert delivery.status == DeliveryStatus.HELD and slack_receiver.requests == []
    assert incident.timeline.filter(message__startswith="Notifications held until").exists()
    assert services.due_delivery_ids(now=now + timedelta(minutes=30)) == []
    later = delivery.next_attempt_at + timedelta(seconds=1)
    assert services.due_delivery_ids(now=later) == [delivery.pk]
    services.attempt_delivery(delivery_id=delivery.pk, now=later)
    slack_receiver.wait_for(1)
    assert Delivery.objects.get().status == DeliveryStatus.DELIVERED


def test_held_notification_is_dropped_when_the_incident_resolves_first(slack, slack_receiver, opened, committed,
                                                                       responder):
    from django.utils import timezone

    from incidents import services as incident_services

    now = timezone.now()
    QuietHours.objects.create(team="payments", start=(now - timedelta(hours=1)).time(),
                              end=(now + timedelta(hours=1)).time(), timezone="UTC")
    route_to(slack)
    incident = opened(severity="low")
    with committed():
        incident_services.transition_incident(incident=incident, to="resolved", user=responder)
    delivery = Delivery.objects.get()
    services.attempt_delivery(delivery_id=delivery.pk, now=delivery.next_attempt_at)
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.SUPPRESSED and slack_receiver.requests == []
