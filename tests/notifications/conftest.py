"""Fixtures for notifications: loopback allowed (every receiver here is local), investigation's
hooks unplugged (its runs would query telemetry), local receivers per channel, a real SMTP server,
and `opened()` — an incident opened through incidents.services with its after-commit work run."""
from __future__ import annotations

import pytest

from incidents import hooks
from incidents import services as incident_services
from incidents.models import Service, Severity
from notifications import services
from notifications.models import Destination, DestinationKind, Route

from .receivers import HTTPReceiver, SMTPServer, check_pagerduty, check_slack, check_teams, webhook_checker

PD_KEY = "a" * 32
WEBHOOK_SECRET = "s3cret-for-hmac-signing-0123456789"


@pytest.fixture(autouse=True)
def notification_settings(settings):
    settings.NOTIFICATIONS_ALLOW_LOOPBACK = True
    settings.NOTIFICATIONS_BASE_URL = "http://testserver"
    settings.NOTIFICATIONS_RETRY_BACKOFF_SECONDS = 1
    settings.NOTIFICATIONS_MAX_ATTEMPTS = 3
    settings.NOTIFICATIONS_HTTP_TIMEOUT_SECONDS = 3
    settings.GRAFANA_URL = ""
    return settings


@pytest.fixture(autouse=True)
def without_investigation():
    """Investigation listens to the same hooks; its runs would query Prometheus in-process."""
    from investigation import receivers as inv

    pairs = [(hooks.incident_opened, inv.on_incident_opened, "investigation.opened"),
             (hooks.incident_reopened, inv.on_incident_reopened, "investigation.reopened"),
             (hooks.services_joined, inv.on_services_joined, "investigation.joined"),
             (hooks.incident_resolved, inv.on_incident_resolved, "investigation.resolved")]
    for signal, _receiver, uid in pairs:
        signal.disconnect(dispatch_uid=uid)
    yield
    for signal, receiver, uid in pairs:
        signal.connect(receiver, dispatch_uid=uid)


def _receiver(check, **kw):
    receiver = HTTPReceiver(check, **kw)
    yield receiver
    receiver.stop()


@pytest.fixture
def slack_receiver():
    yield from _receiver(check_slack)


@pytest.fixture
def teams_receiver():
    yield from _receiver(check_teams, ok_body=b"", ok_status=202)


@pytest.fixture
def pagerduty_receiver():
    yield from _receiver(check_pagerduty, ok_status=202,
                         ok_body=b'{"status":"success","message":"Event processed","dedup_key":"x"}')


@pytest.fixture
def webhook_receiver():
    yield from _receiver(webhook_checker(WEBHOOK_SECRET), ok_body=b"")


@pytest.fixture
def smtp_server(settings):
    server = SMTPServer()
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", server.port
    settings.EMAIL_USE_TLS = settings.EMAIL_USE_SSL = False
    yield server
    server.stop()


@pytest.fixture
def make_destination(db):
    def make(kind: str, name: str | None = None, **fields) -> Destination:
        return services.save_destination(name=name or f"{kind}-dest", kind=kind, **fields)

    return make


@pytest.fixture
def slack(make_destination, slack_receiver):
    return make_destination(DestinationKind.SLACK, secret=slack_receiver.url)


@pytest.fixture
def teams(make_destination, teams_receiver):
    return make_destination(DestinationKind.TEAMS, secret=teams_receiver.url)


@pytest.fixture
def pagerduty(make_destination, pagerduty_receiver):
    return make_destination(DestinationKind.PAGERDUTY, url=pagerduty_receiver.url, secret=PD_KEY)


@pytest.fixture
def webhook(make_destination, webhook_receiver):
    return make_destination(DestinationKind.WEBHOOK, url=webhook_receiver.url, secret=WEBHOOK_SECRET)


def route_to(*destinations, name="everything", services=(), **criteria) -> Route:
    route = Route.objects.create(name=name, **criteria)
    route.destinations.set(destinations)
    route.services.set(services)
    return route


@pytest.fixture
def payments(db):
    return Service.objects.create(slug="payment", name="Payment", owner_team="payments")


@pytest.fixture
def opened(django_capture_on_commit_callbacks, payments):
    """Open an incident the way detection does, running every after-commit callback (hooks,
    tasks inline) as a committed transaction would."""

    def open_incident(title="Payment errors on payment", severity=Severity.HIGH, service=None, **kw):
        with django_capture_on_commit_callbacks(execute=True):
            return incident_services.create_incident(title=title, severity=severity,
                                                     primary_service=service or payments, source="rule", **kw)

    return open_incident


@pytest.fixture
def committed(django_capture_on_commit_callbacks):
    """Run a block and then its after-commit callbacks: `with committed(): ...`."""
    return lambda: django_capture_on_commit_callbacks(execute=True)
