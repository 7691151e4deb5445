"""The one-click acknowledge link: GET confirms, POST acknowledges; tampered or expired links are
refused; who acknowledged is on the timeline."""
import time

import pytest

from incidents.models import Incident
from notifications import signing
from notifications.models import DestinationKind, EscalationPolicy, EscalationState, EscalationStep, ScheduledEscalation

from .conftest import route_to


@pytest.fixture
def link(slack, slack_receiver, opened, make_destination):
    route_to(slack)
    policy = EscalationPolicy.objects.create(name="p", team="payments")
    EscalationStep.objects.create(policy=policy, position=1, delay_seconds=60).destinations.set(
        [make_destination(DestinationKind.EMAIL, name="oncall", recipients="oncall@example.com")])
    incident = opened()
    [request] = slack_receiver.wait_for(1)
    url = next(b["url"] for b in request["json"]["blocks"][-1]["elements"] if b["action_id"] == "acknowledge")
    return incident, url.removeprefix("http://testserver")


def test_get_shows_a_confirm_page_and_acknowledges_nothing(client, responder, link):
    incident, path = link
    client.force_login(responder)
    page = client.get(path)
    assert page.status_code == 200 and b'data-testid="confirm-ack"' in page.content
    assert Incident.objects.get(pk=incident.pk).acknowledged_at is None


def test_post_acknowledges_as_the_signed_in_responder(client, responder, link, django_capture_on_commit_callbacks):
    incident, path = link
    client.force_login(responder)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(path)
    assert response.status_code == 200 and b"Acknowledged by" in response.content
    incident.refresh_from_db()
    assert incident.acknowledged_at is not None and incident.status == "investigating"
    entry = incident.timeline.filter(data__notification=True, data__acknowledged_via="slack").get()
    assert entry.actor == responder.username and entry.actor_user == responder
    assert "Slack notification 'slack-dest'" in entry.message
    assert ScheduledEscalation.objects.get().status == EscalationState.CANCELLED
    again = client.post(path)
    assert again.status_code == 409 and b"already acknowledged" in again.content


def test_anonymous_post_goes_to_login_unless_allowed(client, link, settings, django_capture_on_commit_callbacks):
    incident, path = link
    response = client.post(path)
    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")
    assert Incident.objects.get(pk=incident.pk).acknowledged_at is None
    settings.NOTIFICATIONS_ACK_ANONYMOUS = True
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(path)
    assert response.status_code == 200
    entry = incident.timeline.filter(data__notification=True, data__anonymous=True).get()
    assert entry.actor == "slack-dest" and "slack-dest (signed link, not signed in)" in entry.message


def test_a_viewer_cannot_acknowledge(client, viewer, link):
    incident, path = link
    client.force_login(viewer)
    assert client.post(path).status_code == 403
    assert Incident.objects.get(pk=incident.pk).acknowledged_at is None


def test_a_tampered_link_is_refused(client, responder, link):
    incident, path = link
    token = path.split("/")[-2]
    forged = signing.make_ack_token(incident_id=incident.pk, destination_id=None, recipient="x")
    tampered = token[:-3] + ("AAA" if not token.endswith("AAA") else "BBB")
    client.force_login(responder)
    for bad in (tampered, forged.split(":")[0] + ":" + token.split(":", 1)[1], "nonsense"):
        response = client.post(f"/notifications/ack/{bad}/")
        assert response.status_code == 400 and b"not valid" in response.content
    assert Incident.objects.get(pk=incident.pk).acknowledged_at is None


def test_an_expired_link_is_refused(client, responder, link, monkeypatch, settings):
    incident, _ = link
    settings.NOTIFICATIONS_ACK_LINK_MAX_AGE_SECONDS = 3600
    issued = time.time() - 3601
    monkeypatch.setattr("django.core.signing.time.time", lambda: issued)
    old = signing.make_ack_token(incident_id=incident.pk, destination_id=None, recipient="alice@example.com")
    monkeypatch.undo()
    client.force_login(responder)
    response = client.post(f"/notifications/ack/{old}/")
    assert response.status_code == 400 and b"expired" in response.content
    assert Incident.objects.get(pk=incident.pk).acknowledged_at is None


def test_email_links_name_their_recipient(make_destination, smtp_server, opened, client, settings,
                                          django_capture_on_commit_callbacks):
    settings.NOTIFICATIONS_ACK_ANONYMOUS = True
    route_to(make_destination(DestinationKind.EMAIL, name="team-mail", recipients="carol@example.com"))
    incident = opened()
    [mail] = smtp_server.wait_for(1)
    url = next(line for line in mail.get_body(preferencelist=("plain",)).get_content().splitlines()
               if line.startswith("Acknowledge")).split(": ", 1)[1]
    with django_capture_on_commit_callbacks(execute=True):
        assert client.post(url.removeprefix("http://testserver")).status_code == 200
    entry = incident.timeline.filter(data__notification=True, data__anonymous=True).get()
    assert entry.actor == "carol@example.com" and "Email notification 'team-mail'" in entry.message
