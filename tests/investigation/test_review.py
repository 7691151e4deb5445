"""The post-incident review: generated from stored rows, edited by responders, exported as Markdown
and JSON (page and /api/v1/incidents/{key}/review/), complete without any telemetry source."""
from __future__ import annotations

import pytest
from django.urls import reverse

from incidents import services as incidents
from incidents.models import Status
from investigation import panels, services
from investigation.models import Review
from investigation.review import SECTION_NAMES, generate_review

from .test_pages import investigated

pytestmark = pytest.mark.django_db
HX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture(autouse=True)
def investigation_panels():
    panels.register()


@pytest.fixture
def no_telemetry(settings, monkeypatch):
    """Every source unset, and any client call an error: the review must not need them."""
    settings.PROMETHEUS_URL = settings.LOKI_URL = settings.TEMPO_URL = settings.GRAFANA_URL = ""
    settings.KUBERNETES_KUBECONFIG, settings.KUBERNETES_IN_CLUSTER = "", False

    def refuse(*args, **kwargs):
        raise AssertionError("the review queried a telemetry source")

    for target in ("reliability_studio.telemetry.prometheus.PrometheusClient.query_range",
                   "reliability_studio.telemetry.prometheus.PrometheusClient.query",
                   "reliability_studio.telemetry.loki.LokiClient.query_range",
                   "reliability_studio.telemetry.tempo.TempoClient.search"):
        monkeypatch.setattr(target, refuse, raising=False)


@pytest.fixture
def resolved(responder):
    from ..factories import ServiceFactory

    payment = ServiceFactory(slug="payment")
    checkout = ServiceFactory(slug="checkout")
    checkout.depends_on.add(payment)
    incident = incidents.create_incident(title="Checkout 5xx", severity="critical", primary_service=checkout,
                                         affected_services=[checkout, payment], actor="detection", source="rule")
    rows = investigated(incident)
    incidents.acknowledge_incident(incident=incident, user=responder)
    incidents.add_comment(incident=incident, user=responder, message="Rolling back payment to v1.4.1")
    incidents.create_task(incident=incident, title="Add a retry budget to the payment adapter", user=responder)
    services.decide_hypothesis(hypothesis=rows["cause"], status="confirmed", user=responder, note="rollback fixed it")
    incidents.transition_incident(incident=incident, to=Status.RESOLVED, user=responder)
    incident.refresh_from_db()
    return incident, rows


def test_generated_review_covers_every_section_from_stored_data(resolved, no_telemetry):
    incident, rows = resolved
    review = generate_review(incident)
    assert set(SECTION_NAMES) <= set(review.generated)
    assert "Confirmed cause: payment is failing and checkout fails through it (payment)." in review.section("summary")
    assert "Failed requests: about 1,234" in review.section("impact") and "checkout" in review.section("impact")
    timeline = review.section("timeline")
    assert "Rolling back payment to v1.4.1" in timeline and "Confirmed hypothesis" in timeline
    assert timeline.index("Rolling back payment") < timeline.index("investigating → resolved")  # oldest first
    cause = review.section("root_cause")
    assert "**payment is failing and checkout fails through it**" in cause and "confirmed by" in cause
    evidence = review.section("evidence")
    assert "payment error ratio 0.02 → 0.61" in evidence and rows["metrics"].query.replace("`", "'") in evidence
    assert f"run {rows['run'].pk}" in evidence and "Explore" in evidence
    assert "Detected" in review.section("detection") and "Source: Detection rule" in review.section("detection")
    assert "Acknowledgement: acknowledged" in review.section("response") and "rollback fixed it" in review.section("response")
    assert "- [ ] Add a retry budget to the payment adapter" in review.section("action_items")
    assert "What went well?" in review.section("lessons")
    data = review.generated["data"]
    assert data["root_cause"]["service"] == "payment" and data["durations_seconds"]["time_to_resolve"] > 0
    assert any(e["supports_cause"] and e["kind"] == "metrics" for e in data["evidence"])


def test_edits_win_and_regeneration_keeps_them(resolved, responder):
    from investigation.review import edit_review

    incident, _rows = resolved
    review = generate_review(incident)
    edit_review(review=review, sections={"lessons": "Alert on the adapter's 502s directly."}, user=responder)
    incidents.create_task(incident=incident, title="Write a runbook for provider outages", user=responder)
    review = generate_review(incident)  # again, e.g. after a late task
    assert review.section("lessons") == "Alert on the adapter's 502s directly."
    assert "Write a runbook for provider outages" in review.section("action_items")  # generated sections follow
    review.refresh_from_db()
    assert review.edited == {"lessons": "Alert on the adapter's 502s directly."} and review.edited_by == responder
    edit_review(review=review, sections={"lessons": None}, user=responder)  # restore the generated text
    review.refresh_from_db()
    assert "What went well?" in review.section("lessons")


def test_resolving_generates_the_review(responder, django_capture_on_commit_callbacks):
    incident = incidents.create_incident(title="Catalog slow", severity="low")
    with django_capture_on_commit_callbacks(execute=True):
        incidents.transition_incident(incident=incident, to=Status.RESOLVED, user=responder)
    review = Review.objects.get(incident=incident)
    assert "Catalog slow" in review.section("summary")


# --- the page ----------------------------------------------------------------------------------------

def test_review_page_shows_the_sections_and_responders_edit_them(client, responder, viewer, resolved, no_telemetry):
    incident, _rows = resolved
    client.force_login(viewer)
    html = client.get(reverse("incidents:review", args=[incident.pk])).content.decode()
    for name in SECTION_NAMES:
        assert f'id="review-section-{name}"' in html, name
    assert "<strong>payment is failing and checkout fails through it</strong>" in html
    assert "Download Markdown" in html and 'name="text"' not in html  # a viewer has no edit form
    assert client.post(reverse("investigation:review-edit", args=[incident.pk]),
                       {"section": "lessons", "text": "x"}, **HX).status_code == 403

    client.force_login(responder)
    html = client.get(reverse("incidents:review", args=[incident.pk])).content.decode()
    assert html.count('name="text"') == len(SECTION_NAMES)
    response = client.post(reverse("investigation:review-edit", args=[incident.pk]),
                           {"section": "lessons", "text": "- Page on the adapter's 502s\n- <b>keep</b> the rollback"}, **HX)
    body = response.content.decode()
    assert response.status_code == 200 and 'data-edited="true"' in body and "badge edited" in body
    assert "<li>Page on the adapter&#x27;s 502s</li>" in body and "&lt;b&gt;keep&lt;/b&gt;" in body  # escaped
    assert client.post(reverse("investigation:review-edit", args=[incident.pk]),
                       {"section": "nope", "text": "x"}, **HX).status_code == 422
    response = client.post(reverse("investigation:review-edit", args=[incident.pk]),
                           {"section": "lessons", "restore": "on"}, **HX)
    assert 'data-edited="false"' in response.content.decode()
    response = client.post(reverse("investigation:review-regenerate", args=[incident.pk]))
    assert response.status_code == 302 and response["Location"] == reverse("incidents:review", args=[incident.pk])


def test_markdown_download_contains_every_section(client, viewer, resolved, no_telemetry):
    incident, _rows = resolved
    client.force_login(viewer)
    response = client.get(reverse("investigation:review-markdown", args=[incident.pk]))
    assert response.status_code == 200 and response["Content-Type"].startswith("text/markdown")
    assert response["Content-Disposition"] == f'attachment; filename="{incident.key}-review.md"'
    text = response.content.decode()
    assert text.startswith(f"# {incident.key} Checkout 5xx — post-incident review")
    for title in ("Summary", "Impact", "Timeline", "Root cause", "Evidence", "Detection", "Response",
                  "Action items", "Lessons learned"):
        assert f"\n## {title}\n" in text, title
    assert "| Time to resolve |" in text


# --- the API -----------------------------------------------------------------------------------------

def url(incident) -> str:
    return f"/api/v1/incidents/{incident.key}/review/"


def test_api_get_generates_the_review_when_missing_and_answers_json_or_markdown(api, viewer, resolved, no_telemetry):
    incident, _rows = resolved
    Review.objects.filter(incident=incident).delete()
    client = api.as_user(viewer)
    response = client.get(url(incident))
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["incident"] == incident.key and set(body["sections"]) == set(SECTION_NAMES)
    assert body["sections"]["root_cause"]["edited"] is False and body["data"]["root_cause"]["service"] == "payment"
    assert Review.objects.filter(incident=incident).exists()
    for kwargs in ({"path": url(incident) + "?format=md"}, {"path": url(incident), "HTTP_ACCEPT": "text/markdown"}):
        response = client.get(**kwargs)
        assert response.status_code == 200 and response["Content-Type"].startswith("text/markdown"), kwargs
        assert "## Root cause" in response.content.decode()
    assert client.get(f"/api/v1/incidents/{incident.pk}/review/").status_code == 200  # the id works too


def test_api_put_edits_sections_for_responders_only(api, viewer, responder, resolved):
    incident, _rows = resolved
    response = api.as_user(viewer).put(url(incident), {"sections": {"lessons": "x"}}, format="json")
    assert response.status_code == 403 and response.json()["message"]
    response = api.as_user(responder).put(url(incident), {"sections": {"lessons": "Alert on 502s.", "summary": "Short."}},
                                          format="json")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["sections"]["lessons"] == {**body["sections"]["lessons"], "text": "Alert on 502s.", "edited": True}
    assert body["sections"]["summary"]["text"] == "Short." and body["edited_by"] == responder.username
    assert "Confirmed cause" in body["sections"]["summary"]["generated"]
    response = api.as_user(responder).put(url(incident), {"sections": {"summary": None}}, format="json")
    assert response.json()["sections"]["summary"]["edited"] is False


def test_api_put_refuses_unknown_sections_and_bad_bodies(api, responder, resolved):
    incident, _rows = resolved
    client = api.as_user(responder)
    response = client.put(url(incident), {"sections": {"lessons": "ok", "gossip": "no"}}, format="json")
    assert response.status_code == 400 and "gossip" in response.json()["message"]
    assert response.json()["code"] == "invalid"
    assert not Review.objects.filter(incident=incident).exclude(edited={}).exists()  # nothing of it is kept
    for body in ({}, {"sections": "lessons"}, {"sections": {"lessons": 3}}):
        response = client.put(url(incident), body, format="json")
        assert response.status_code == 400 and response.json()["message"], body


def test_api_unknown_incident_is_404_and_anonymous_401(api, viewer):
    response = api.as_user(viewer).get("/api/v1/incidents/INC-999999/review/")
    assert response.status_code == 404 and response.json()["code"] == "not_found"
    assert api.as_user(viewer).get("/api/v1/incidents/nope/review/").status_code == 404
    api.force_authenticate(user=None)
    assert api.get("/api/v1/incidents/INC-1/review/").status_code == 401


def test_review_renders_with_no_telemetry_configured_and_no_run(client, viewer, no_telemetry):
    incident = incidents.create_incident(title="Manual incident", severity="medium")
    client.force_login(viewer)
    response = client.get(reverse("incidents:review", args=[incident.pk]))
    html = response.content.decode()
    assert response.status_code == 200 and 'id="review-section-evidence"' in html
    assert "No completed investigation run" in html and "the review is incomplete" in html
