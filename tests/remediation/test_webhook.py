"""Webhook actions against a local receiver that checks the HMAC; bounded retries; timeouts."""
import json

import pytest

from remediation import services
from remediation.actions.webhook import verify
from remediation.models import ActionStatus

from .conftest import SECRET


def _flow(load_runbook, incident, responders, url, extra=""):
    load_runbook(f"""
        runbooks:
          - name: flag-off
            steps:
              - action: webhook
                params:
                  url: {url}
                  body: {{flag: new-checkout, incident: $incident, service: $service}}
                  {extra}
    """)
    [action] = services.propose_for_incident(incident_id=incident.pk)
    alice, bob = responders
    services.request_action(action=action, user=alice)
    services.approve_action(action=action, user=bob)
    return services.execute_action(action_id=action.pk)


def test_the_receiver_gets_an_hmac_signed_body(receiver, load_runbook, incident, responders):
    hook = receiver(200)
    action = _flow(load_runbook, incident, responders, hook.url)
    assert action.status == ActionStatus.SUCCEEDED, action.error
    [delivery] = hook.deliveries
    headers, body = delivery["headers"], delivery["body"]
    assert verify(SECRET, headers["x-rs-timestamp"], body, headers["x-rs-signature"])
    assert not verify("another-secret", headers["x-rs-timestamp"], body, headers["x-rs-signature"])
    assert headers["content-type"] == "application/json" and headers["x-rs-delivery"] == str(action.pk)
    assert json.loads(body) == {"flag": "new-checkout", "incident": str(incident.pk), "service": "checkout"}
    assert action.dry_run["request"]["body"] == json.loads(body)
    assert action.result["attempts"] == 1


def test_server_errors_are_retried_a_bounded_number_of_times(receiver, load_runbook, incident, responders):
    hook = receiver(503, 503, 200)
    action = _flow(load_runbook, incident, responders, hook.url)
    assert action.status == ActionStatus.SUCCEEDED and action.result["attempts"] == 3
    assert len({d["headers"]["x-rs-delivery"] for d in hook.deliveries}) == 1  # one delivery id to dedupe on


def test_gives_up_after_the_retry_budget(receiver, load_runbook, incident, responders):
    hook = receiver(503)
    action = _flow(load_runbook, incident, responders, hook.url, extra="retries: 1")
    assert action.status == ActionStatus.FAILED
    assert len(hook.deliveries) == 2
    assert "failed after 2 attempt(s): HTTP 503" in action.error


def test_a_client_error_is_not_retried(receiver, load_runbook, incident, responders):
    hook = receiver(400)
    action = _flow(load_runbook, incident, responders, hook.url)
    assert action.status == ActionStatus.FAILED and len(hook.deliveries) == 1


def test_a_hanging_receiver_times_out(receiver, load_runbook, incident, responders):
    hook = receiver(200, delay=5)
    action = _flow(load_runbook, incident, responders, hook.url, extra="{timeout: 0.2, retries: 0}".strip("{}").replace(", ", "\n                  "))
    assert action.status == ActionStatus.FAILED
    assert "timed out after 0.2s" in action.error


def test_no_secret_no_delivery(receiver, load_runbook, incident, responders, settings):
    settings.REMEDIATION_WEBHOOK_SECRET = ""
    hook = receiver(200)
    action = _flow(load_runbook, incident, responders, hook.url)
    assert action.status == ActionStatus.FAILED and "no webhook secret" in action.error
    assert hook.deliveries == []


@pytest.mark.parametrize("url", ["ftp://example.com/x", "not a url"])
def test_bad_urls_are_refused_when_loading(load_runbook, url):
    from remediation.runbooks import RunbookError

    with pytest.raises(RunbookError, match="must be an http"):
        load_runbook(f"""
            runbooks:
              - name: hook
                steps: [{{action: webhook, params: {{url: "{url}"}}}}]
        """)
