"""Updates (status changes, a new top hypothesis, resolution) go to the destinations that were
told about the incident, once each; the log is on the timeline."""
from incidents import services as incident_services
from investigation import services as investigation_services
from investigation.models import Hypothesis, HypothesisKind
from notifications.models import Delivery, DeliveryStatus, DestinationKind

from .conftest import route_to


def _labels(receiver):
    return [r["json"]["blocks"][1]["elements"][0]["text"].split("*")[1] for r in receiver.accepted]


def test_status_changes_hypothesis_and_resolution_reach_the_same_destinations(
        slack, slack_receiver, make_destination, opened, committed, responder, payments):
    route_to(slack)
    incident = opened()
    # A route added later does not receive this incident's updates: they follow the first message.
    route_to(make_destination(DestinationKind.EMAIL, name="late", recipients="late@example.com"), name="late")
    with committed():
        incident_services.acknowledge_incident(incident=incident, user=responder)
    with committed():
        incident_services.transition_incident(incident=incident, to="mitigated", user=responder)
    first = Hypothesis.objects.create(incident=incident, kind=HypothesisKind.BAD_DEPLOY, service="payment",
                                      title="Bad deploy of payment", confidence=0.7, rank=1)
    Hypothesis.objects.create(incident=incident, kind=HypothesisKind.LATENCY, service="database",
                              title="Database latency", confidence=0.5, rank=2)
    with committed():  # a rejection re-ranks: the database hypothesis becomes the top one
        investigation_services.decide_hypothesis(hypothesis=first, status="rejected", user=responder)
    with committed():
        incident_services.transition_incident(incident=incident, to="resolved", user=responder)
    slack_receiver.wait_for(5)
    assert _labels(slack_receiver) == ["Incident opened", "Acknowledged", "Status: mitigated", "New top hypothesis",
                                       "Resolved"]
    hypothesis_message = slack_receiver.accepted[3]["json"]
    assert "Database latency" in str(hypothesis_message["blocks"])
    # Once acknowledged, messages carry no acknowledge button.
    assert all(b["action_id"] != "acknowledge" for b in slack_receiver.accepted[1]["json"]["blocks"][-1]["elements"])
    assert not Delivery.objects.filter(destination_name="late").exists()
    assert Delivery.objects.filter(status=DeliveryStatus.DELIVERED).count() == 5
    log = incident.timeline.filter(data__notification=True, data__status="delivered").count()
    assert log == 5


def test_a_hypothesis_already_in_the_first_message_is_not_sent_again(slack, slack_receiver, opened, committed,
                                                                     django_capture_on_commit_callbacks, payments):
    from notifications import flows

    route_to(slack)
    incident = incident_services.create_incident(title="t", severity="high", primary_service=payments)
    Hypothesis.objects.create(incident=incident, kind=HypothesisKind.BAD_DEPLOY, service="payment",
                              title="Bad deploy", confidence=0.9, rank=1)
    with committed():
        flows.incident_opened(incident_id=incident.pk)
    with committed():
        flows.top_hypothesis_changed(incident_id=incident.pk)
    slack_receiver.wait_for(1)
    assert len(slack_receiver.requests) == 1


def test_reopening_notifies_again(slack, slack_receiver, opened, committed, responder):
    route_to(slack)
    incident = opened()
    with committed():
        incident_services.transition_incident(incident=incident, to="resolved", user=responder)
    with committed():
        incident_services.transition_incident(incident=incident, to="open", user=responder)
    slack_receiver.wait_for(3)
    assert _labels(slack_receiver) == ["Incident opened", "Resolved", "Reopened"]
