"""The one screen: recommended actions on the incident page, its buttons, and the audit page."""
import pytest

from remediation import services
from remediation.models import ActionStatus

HTMX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture
def proposed(load_runbook, incident, hypothesis, settings, receiver):
    hook = receiver(200)
    load_runbook(f"""
        runbooks:
          - name: flag
            steps: [{{name: flag-off, action: webhook, params: {{url: "{hook.url}"}}}}]
    """)
    [action] = services.propose_for_incident(incident_id=incident.pk)
    return action


def test_the_incident_page_shows_the_proposal_with_its_dry_run(proposed, client, responders):
    client.force_login(responders[0])
    page = client.get(f"/incidents/{proposed.incident_id}/").content.decode()
    assert 'id="region-actions"' in page and "rs-remediation-updated from:body" in page
    assert f'data-action="{proposed.pk}"' in page and 'data-status="proposed"' in page
    assert "Dry run: what would change" in page and "POST <code>http://127.0.0.1" in page
    assert 'data-verb="request"' in page and 'data-verb="approve"' not in page


def test_request_then_another_responder_approves_through_the_region(proposed, client, responders):
    alice, bob = responders
    client.force_login(alice)
    region = client.post(f"/remediation/actions/{proposed.pk}/request/", **HTMX)
    assert region.status_code == 200 and region["HX-Trigger"] == "rs-timeline-appended"
    html = region.content.decode()
    assert "Waiting for another responder to approve." in html and 'data-verb="approve"' not in html
    refused = client.post(f"/remediation/actions/{proposed.pk}/approve/", **HTMX)
    assert refused.status_code == 403 and "four eyes" in refused.content.decode()
    client.force_login(bob)
    html = client.get(f"/incidents/{proposed.incident_id}/regions/actions/").content.decode()
    assert 'data-verb="approve"' in html
    assert client.post(f"/remediation/actions/{proposed.pk}/approve/", **HTMX).status_code == 200
    proposed.refresh_from_db()
    assert proposed.status == ActionStatus.APPROVED  # (the worker runs it; eager tasks need the commit)


def test_viewers_see_the_actions_without_buttons(proposed, client, viewer):
    client.force_login(viewer)
    html = client.get(f"/incidents/{proposed.incident_id}/regions/actions/").content.decode()
    assert f'data-action="{proposed.pk}"' in html and "data-verb" not in html


def test_kill_switch_is_shown_on_the_panel(proposed, client, viewer, settings):
    settings.REMEDIATION_KILL_SWITCH = True
    client.force_login(viewer)
    html = client.get(f"/incidents/{proposed.incident_id}/regions/actions/").content.decode()
    assert "data-kill-switch" in html


def test_the_audit_page_lists_who_did_what(proposed, client, responders, viewer):
    services.request_action(action=proposed, user=responders[0])
    client.force_login(viewer)
    html = client.get(f"/remediation/audit/?incident={proposed.incident_id}").content.decode()
    assert "Remediation audit log" in html and ">alice<" in html and "Requested" in html
    assert html.count("data-audit=") == 2
    client.logout()
    assert client.get("/remediation/audit/").status_code == 302  # login first
