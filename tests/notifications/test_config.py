"""Configuration: clear errors on save (admin, API, services), write-only secrets, the test button."""
import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse

from notifications import services
from notifications.models import Destination, DestinationKind, Route

from .conftest import PD_KEY

API = "/api/v1/notifications/destinations/"


@pytest.mark.parametrize("fields, field, message", [
    ({"kind": "carrier-pigeon"}, "kind", "unknown destination kind 'carrier-pigeon'"),
    ({"kind": "webhook", "url": "not a url", "secret": "0123456789abcdef0"}, "url", "http:// or https://"),
    ({"kind": "webhook", "url": "https://hooks.example.com/x"}, "secret", "the HMAC signing secret is required"),
    ({"kind": "webhook", "url": "https://hooks.example.com/x", "secret": "short"}, "secret", "at least 16"),
    ({"kind": "slack"}, "secret", "the Slack webhook URL is required"),
    ({"kind": "slack", "secret": "hooks.slack.com/services/T/B/x"}, "secret", "http:// or https://"),
    ({"kind": "teams", "secret": "https://exa mple.com/x"}, "secret", "whitespace"),
    ({"kind": "pagerduty", "secret": "too-short"}, "secret", "32 letters and digits"),
    ({"kind": "pagerduty", "secret_env": "RS_TEST_UNSET_PD_KEY"}, "secret_env", "RS_TEST_UNSET_PD_KEY"),
    ({"kind": "email", "recipients": "alice@example.com, not-an-address"}, "recipients", "not-an-address"),
    ({"kind": "email"}, "recipients", "at least one"),
])
def test_bad_configuration_is_refused_on_save_with_a_clear_error(db, fields, field, message):
    with pytest.raises(ValidationError) as error:
        services.save_destination(name="bad", **fields)
    assert message in " ".join(error.value.message_dict[field])
    assert not Destination.objects.exists()


def test_the_database_refuses_an_unknown_kind_too(db):
    from django.db import IntegrityError

    with pytest.raises(IntegrityError):
        Destination.objects.create(name="x", kind="carrier-pigeon")


def test_api_refuses_bad_configuration_naming_the_field(api, admin_user):
    response = api.as_user(admin_user).post(API, {"name": "bad", "kind": "webhook", "url": "ftp://x"}, format="json")
    assert response.status_code == 400
    assert set(response.json()["errors"]) >= {"url", "secret"}
    response = api.post(API, {"name": "bad", "kind": "sms"}, format="json")
    assert response.status_code == 400 and "unknown destination kind 'sms'" in response.json()["message"]


def test_secrets_are_write_only_and_shown_masked(api, admin_user, monkeypatch):
    client = api.as_user(admin_user)
    response = client.post(API, {"name": "pd", "kind": "pagerduty", "secret": PD_KEY[:-4] + "WXYZ"}, format="json")
    assert response.status_code == 201, response.json()
    body = response.json()
    assert "secret" not in body and body["secret_hint"] == "…WXYZ"
    slack = client.post(API, {"name": "sl", "kind": "slack", "secret": "https://hooks.slack.com/services/T1/B2/abcdef"},
                        format="json").json()
    assert slack["secret_hint"] == "https://hooks.slack.com/…"
    assert "abcdef" not in str(client.get(API).json())
    # An update without a secret keeps it.
    response = client.patch(f"{API}{body['id']}/", {"enabled": False}, format="json")
    assert response.status_code == 200 and Destination.objects.get(pk=body["id"]).secret.endswith("WXYZ")
    monkeypatch.setenv("RS_TEST_PD_KEY", PD_KEY)
    env = client.post(API, {"name": "pd-env", "kind": "pagerduty", "secret_env": "RS_TEST_PD_KEY"}, format="json").json()
    assert env["secret_hint"] == "$RS_TEST_PD_KEY"


def test_only_admins_configure_destinations(api, responder):
    response = api.as_user(responder).post(API, {"name": "x", "kind": "email", "recipients": "a@example.com"},
                                           format="json")
    assert response.status_code == 403
    assert api.get(API).status_code == 200


def test_the_test_button_sends_a_sample(api, admin_user, slack, slack_receiver):
    response = api.as_user(admin_user).post(f"{API}{slack.pk}/test/")
    assert response.status_code == 200 and response.json()["ok"] is True
    [request] = slack_receiver.wait_for(1)
    assert request["json"]["blocks"][0]["text"]["text"] == "INC-TEST Test notification from Reliability Studio"
    assert not any(b.get("action_id") == "acknowledge" for b in request["json"]["blocks"][-1]["elements"])


def test_the_test_button_reports_a_failing_destination(api, admin_user, slack, slack_receiver):
    slack_receiver.always_fail = 500
    response = api.as_user(admin_user).post(f"{API}{slack.pk}/test/")
    assert response.status_code == 502 and "HTTP 500" in response.json()["error"]


def test_admin_test_button_and_write_only_secret(client, admin_user, slack, slack_receiver):
    # A superuser: the role groups get notifications' model permissions once access.ADMIN_APPS lists it.
    admin_user.is_superuser = admin_user.is_staff = True
    admin_user.save()
    client.force_login(admin_user)
    page = client.get(reverse("admin:notifications_destination_change", args=[slack.pk]))
    assert page.status_code == 200 and b"Send test notification" in page.content
    assert slack_receiver.url.encode() not in page.content  # the secret is never rendered
    response = client.post(reverse("admin:notifications_destination_test", args=[slack.pk]))
    assert response.status_code == 302
    slack_receiver.wait_for(1)


def test_routes_api_validates_severities_and_needs_a_destination(api, admin_user, slack, payments):
    client = api.as_user(admin_user)
    bad = client.post("/api/v1/notifications/routes/", {"name": "r", "severities": ["urgent"],
                                                        "destinations": [slack.pk]}, format="json")
    assert bad.status_code == 400 and "severities" in bad.json()["errors"]
    none = client.post("/api/v1/notifications/routes/", {"name": "r", "destinations": []}, format="json")
    assert none.status_code == 400
    ok = client.post("/api/v1/notifications/routes/", {"name": "r", "services": ["payment"], "severities": ["high"],
                                                       "destinations": [slack.pk]}, format="json")
    assert ok.status_code == 201, ok.json()
    assert list(Route.objects.get().services.values_list("slug", flat=True)) == ["payment"]


def test_escalation_policy_api_writes_steps(api, admin_user, slack):
    response = api.as_user(admin_user).post("/api/v1/notifications/escalation-policies/", {
        "name": "payments", "team": "payments",
        "steps": [{"position": 1, "delay_seconds": 300, "destinations": [slack.pk]},
                  {"position": 2, "delay_seconds": 600, "destinations": [slack.pk]}]}, format="json")
    assert response.status_code == 201, response.json()
    assert [s["delay_seconds"] for s in response.json()["steps"]] == [300, 600]


def test_quiet_hours_refuse_an_unknown_time_zone(api, admin_user):
    response = api.as_user(admin_user).post("/api/v1/notifications/quiet-hours/", {
        "team": "payments", "start": "22:00", "end": "07:00", "timezone": "Mars/Olympus"}, format="json")
    assert response.status_code == 400 and "timezone" in response.json()["errors"]
