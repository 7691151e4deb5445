"""Each destination kind against a local receiver that checks the documented payload shape."""
import hashlib
import hmac

from django.utils import timezone

from incidents import services as incident_services
from investigation.models import Hypothesis, HypothesisKind
from notifications.models import Delivery, DeliveryStatus, DestinationKind

from .conftest import PD_KEY, WEBHOOK_SECRET, route_to


def test_slack_block_kit_with_title_severity_service_links_and_ack_button(slack, slack_receiver, opened):
    route_to(slack)
    incident = opened()
    [request] = slack_receiver.wait_for(1)
    body = request["json"]
    header = body["blocks"][0]
    assert header["type"] == "header" and header["text"]["text"] == f"{incident.key} Payment errors on payment"
    fields = [f["text"] for f in body["blocks"][2]["fields"]]
    assert "*Severity*\nhigh" in fields and "*Service*\npayment" in fields and "*Team*\npayments" in fields
    buttons = {b["action_id"]: b["url"] for b in body["blocks"][-1]["elements"]}
    assert buttons["acknowledge"].startswith("http://testserver/notifications/ack/")
    assert buttons["control_room"] == f"http://testserver/incidents/{incident.pk}/"
    assert slack_receiver.rejected == []
    delivery = Delivery.objects.get()
    assert delivery.status == DeliveryStatus.DELIVERED and delivery.attempts == 1 and delivery.response_code == 200


def test_slack_message_carries_the_top_hypothesis_and_grafana_link(slack, slack_receiver, opened, settings,
                                                                   committed, payments):
    settings.GRAFANA_URL = "http://grafana.example"
    route_to(slack)
    # The annotation sync would call Grafana: the incident is opened with it unconfigured.
    settings.GRAFANA_URL = ""
    incident = opened()
    settings.GRAFANA_URL = "http://grafana.example"
    Hypothesis.objects.create(incident=incident, kind=HypothesisKind.BAD_DEPLOY, service="payment",
                              title="Bad deploy of payment v2.1", confidence=0.83, rank=1)
    Hypothesis.objects.create(incident=incident, kind=HypothesisKind.LATENCY, service="database",
                              title="Database latency", confidence=0.4, rank=2)
    from notifications import services

    with committed():
        services.notify_top_hypothesis(incident_id=incident.pk)
    requests = slack_receiver.wait_for(2)
    body = requests[1]["json"]
    texts = [b["text"]["text"] for b in body["blocks"] if b["type"] == "section" and "text" in b]
    assert texts == ["*Top hypothesis* (83%)\nBad deploy of payment v2.1"]
    grafana = [b["url"] for b in body["blocks"][-1]["elements"] if b["action_id"] == "grafana"]
    assert grafana and grafana[0].startswith("http://grafana.example/explore?")
    assert "New top hypothesis" in body["blocks"][1]["elements"][0]["text"]


def test_teams_adaptive_card(teams, teams_receiver, opened):
    route_to(teams)
    incident = opened()
    [request] = teams_receiver.wait_for(1)
    card = request["json"]["attachments"][0]["content"]
    assert card["type"] == "AdaptiveCard" and card["version"] == "1.4"
    assert card["body"][1]["text"] == f"{incident.key} Payment errors on payment"
    facts = {f["title"]: f["value"] for f in card["body"][2]["facts"]}
    assert facts == {"Severity": "high", "Status": "open", "Service": "payment", "Team": "payments"}
    titles = [a["title"] for a in card["actions"]]
    assert titles == ["Acknowledge", "Control room"]
    assert Delivery.objects.get().response_code == 202


def test_pagerduty_trigger_acknowledge_resolve_share_the_incident_key(pagerduty, pagerduty_receiver, opened,
                                                                      responder, committed):
    route_to(pagerduty)
    incident = opened(severity="critical")
    [trigger] = pagerduty_receiver.wait_for(1)
    assert trigger["json"]["event_action"] == "trigger"
    assert trigger["json"]["dedup_key"] == incident.key and trigger["json"]["routing_key"] == PD_KEY
    assert trigger["json"]["payload"]["severity"] == "critical" and trigger["json"]["payload"]["source"] == "payment"
    with committed():
        incident_services.acknowledge_incident(incident=incident, user=responder)
    with committed():
        incident_services.transition_incident(incident=incident, to="mitigated", user=responder)  # not sent to PD
    with committed():
        incident_services.transition_incident(incident=incident, to="resolved", user=responder)
    requests = pagerduty_receiver.wait_for(3)
    assert [r["json"]["event_action"] for r in requests] == ["trigger", "acknowledge", "resolve"]
    assert {r["json"]["dedup_key"] for r in requests} == {incident.key}
    assert pagerduty_receiver.rejected == []


def test_webhook_is_signed_with_hmac_over_timestamp_and_body(webhook, webhook_receiver, opened):
    route_to(webhook)
    incident = opened()
    [request] = webhook_receiver.wait_for(1)
    headers, raw = request["headers"], request["raw"]
    expected = hmac.new(WEBHOOK_SECRET.encode(), headers["X-RS-Timestamp"].encode() + b"." + raw, hashlib.sha256)
    assert headers["X-RS-Signature"] == "sha256=" + expected.hexdigest()
    assert headers["X-RS-Event"] == "opened" and headers["X-RS-Delivery"] == str(Delivery.objects.get().pk)
    body = request["json"]
    assert body["incident"]["key"] == incident.key and body["incident"]["severity"] == "high"
    assert body["links"]["acknowledge"].startswith("http://testserver/notifications/ack/")


def test_webhook_receiver_refuses_a_wrong_signature(make_destination, webhook_receiver, opened):
    wrong = make_destination(DestinationKind.WEBHOOK, url=webhook_receiver.url, secret="another-secret-0123456789")
    route_to(wrong)
    opened()
    webhook_receiver.wait_for(1, accepted=False)
    assert webhook_receiver.rejected == ["bad signature"]
    delivery = Delivery.objects.get()
    assert delivery.status == DeliveryStatus.FAILED and delivery.attempts == 1  # a 4xx is not retried
    assert "HTTP 400" in delivery.last_error


def test_email_through_a_real_smtp_server_one_message_per_recipient_threaded(make_destination, smtp_server, opened,
                                                                             responder, committed):
    mail = make_destination(DestinationKind.EMAIL, recipients="alice@example.com, bob@example.com")
    route_to(mail)
    incident = opened()
    first = smtp_server.wait_for(2)
    assert sorted(m["To"] for m in first) == ["alice@example.com", "bob@example.com"]
    root = first[0]["Message-ID"]
    assert root == first[1]["Message-ID"] and root.startswith(f"<incident-{incident.pk}.")
    assert first[0]["Subject"] == f"[HIGH] {incident.key} Payment errors on payment"
    text = first[0].get_body(preferencelist=("plain",)).get_content()
    assert "Acknowledge (opens a confirm page): http://testserver/notifications/ack/" in text
    links = {m["To"]: m.get_body(preferencelist=("plain",)).get_content().split("ack/")[1].split("/")[0] for m in first}
    assert links["alice@example.com"] != links["bob@example.com"]  # each link names its recipient
    with committed():
        incident_services.acknowledge_incident(incident=incident, user=responder)
    update = smtp_server.wait_for(4)[2:]
    assert {m["In-Reply-To"] for m in update} == {root} and {m["References"] for m in update} == {root}
    assert update[0]["Subject"].startswith("Re: [HIGH]")
    assert {m["Message-ID"] for m in update}.isdisjoint({root})
    assert Delivery.objects.filter(status=DeliveryStatus.DELIVERED).count() == 2
    assert Delivery.objects.get(event="opened").detail["sent_to"] == ["alice@example.com", "bob@example.com"]


def test_email_retry_sends_only_to_recipients_not_yet_sent(make_destination, smtp_server, opened, settings):
    from notifications import services

    mail = make_destination(DestinationKind.EMAIL, recipients="alice@example.com, bob@example.com")
    route_to(mail)
    settings.EMAIL_PORT = 1  # nothing listens: connection refused → retried
    opened()
    delivery = Delivery.objects.get()
    assert delivery.status == DeliveryStatus.RETRYING and delivery.attempts == 1
    settings.EMAIL_PORT = smtp_server.port
    services.attempt_delivery(delivery_id=delivery.pk, now=timezone.now() + timezone.timedelta(seconds=5))
    assert len(smtp_server.wait_for(2)) == 2
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.DELIVERED and delivery.attempts == 2
