"""Status transitions, timeline writes and the derived MTTx durations."""
from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from incidents import services
from incidents.errors import DuplicateFingerprint, InvalidTransition
from incidents.selectors import mean_response_times
from incidents.models import AppendOnlyError, EventKind, Incident, Severity, Status, TimelineEvent

pytestmark = pytest.mark.django_db


def declare(**kwargs):
    return services.create_incident(title=kwargs.pop("title", "Checkout errors"), severity=kwargs.pop("severity", Severity.HIGH), **kwargs)


def test_full_lifecycle_sets_timestamps_and_timeline(responder):
    incident = declare(started_at=timezone.now() - timedelta(minutes=3))
    assert incident.status == Status.OPEN

    incident = services.acknowledge_incident(incident=incident, user=responder)
    assert incident.status == Status.INVESTIGATING
    assert incident.acknowledged_at is not None and incident.commander == responder

    incident = services.transition_incident(incident=incident, to=Status.MITIGATED, user=responder)
    assert incident.mitigated_at is not None
    incident = services.transition_incident(incident=incident, to=Status.RESOLVED, user=responder, note="rolled back")
    assert incident.resolved_at is not None and incident.status == Status.RESOLVED

    kinds = list(incident.timeline.values_list("kind", "message"))
    assert [k for k, _ in kinds] == [EventKind.STATUS_CHANGE] * 4
    assert kinds[-1][1] == "mitigated → resolved: rolled back"


@pytest.mark.parametrize(
    "path, target",
    [
        ([], Status.OPEN),  # already open
        ([Status.RESOLVED], Status.MITIGATED),  # resolved must be reopened first
        ([Status.RESOLVED], Status.INVESTIGATING),
        ([Status.INVESTIGATING], Status.OPEN),  # only a resolved incident reopens
        ([Status.MITIGATED], Status.OPEN),
    ],
)
def test_invalid_transitions_are_refused_and_change_nothing(responder, path, target):
    incident = declare()
    for step in path:
        incident = services.transition_incident(incident=incident, to=step, user=responder)
    before = (incident.status, incident.timeline.count())
    with pytest.raises(InvalidTransition):
        services.transition_incident(incident=incident, to=target, user=responder)
    incident.refresh_from_db()
    assert (incident.status, incident.timeline.count()) == before


def test_unknown_status_is_refused(responder):
    with pytest.raises(InvalidTransition, match="unknown status"):
        services.transition_incident(incident=declare(), to="exploded", user=responder)


def test_reopen_clears_resolution_and_counts(responder):
    incident = declare()
    services.transition_incident(incident=incident, to=Status.RESOLVED, user=responder)
    incident = services.transition_incident(incident=incident, to=Status.OPEN, user=responder)
    assert incident.status == Status.OPEN
    assert incident.resolved_at is None and incident.mitigated_at is None
    assert incident.reopened_count == 1


def test_reopen_refused_when_the_same_problem_is_already_open(responder):
    first = declare(fingerprint="rule:1|svc=checkout")
    services.transition_incident(incident=first, to=Status.RESOLVED, user=responder)
    declare(fingerprint="rule:1|svc=checkout")
    with pytest.raises(DuplicateFingerprint, match="already open"):
        services.transition_incident(incident=first, to=Status.OPEN, user=responder)


def test_mitigated_can_go_back_to_investigating(responder):
    incident = declare()
    services.transition_incident(incident=incident, to=Status.MITIGATED, user=responder)
    incident = services.transition_incident(incident=incident, to=Status.INVESTIGATING, user=responder)
    assert incident.status == Status.INVESTIGATING and incident.mitigated_at is None


def test_acknowledge_twice_is_refused(responder):
    incident = declare()
    services.acknowledge_incident(incident=incident, user=responder)
    with pytest.raises(InvalidTransition, match="already acknowledged"):
        services.acknowledge_incident(incident=incident, user=responder)


def test_mttx_are_derived_from_timestamps():
    t0 = timezone.now() - timedelta(hours=2)
    incident = Incident.objects.create(
        title="x", severity=Severity.LOW, started_at=t0, detected_at=t0 + timedelta(minutes=4),
        acknowledged_at=t0 + timedelta(minutes=10), mitigated_at=t0 + timedelta(minutes=30),
        resolved_at=t0 + timedelta(minutes=95), status=Status.RESOLVED,
    )
    assert incident.time_to_detect == timedelta(minutes=4)
    assert incident.time_to_acknowledge == timedelta(minutes=6)
    assert incident.time_to_mitigate == timedelta(minutes=30)
    assert incident.time_to_resolve == timedelta(minutes=95)
    fresh = declare()
    assert fresh.time_to_acknowledge is None and fresh.time_to_resolve is None


def test_mean_response_times_aggregate():
    t0 = timezone.now() - timedelta(hours=5)
    for minutes in (2, 4):
        Incident.objects.create(title="x", severity=Severity.LOW, started_at=t0, detected_at=t0 + timedelta(minutes=minutes),
                                resolved_at=t0 + timedelta(minutes=10 * minutes), status=Status.RESOLVED)
    means = mean_response_times(since=t0 - timedelta(minutes=1))
    assert means["mttd"] == timedelta(minutes=3)
    assert means["mttr"] == timedelta(minutes=30)
    assert means["mtta"] is None


def test_started_in_the_future_is_refused():
    with pytest.raises(ValidationError):
        declare(started_at=timezone.now() + timedelta(hours=1))
    assert Incident.objects.count() == 0


def test_timeline_is_append_only():
    incident = declare()
    event = incident.timeline.first()
    event.message = "rewritten"
    with pytest.raises(AppendOnlyError):
        event.save()
    with pytest.raises(AppendOnlyError):
        event.delete()
    with pytest.raises(AppendOnlyError):
        TimelineEvent.objects.filter(incident=incident).update(message="x")
    assert incident.timeline.get().message == "Incident declared (high)"


def test_open_or_update_merges_same_fingerprint_and_escalates_severity():
    first = services.open_or_update_incident(fingerprint="fp-1", title="Errors", severity=Severity.MEDIUM)
    second = services.open_or_update_incident(fingerprint="fp-1", title="Errors", severity=Severity.CRITICAL)
    assert first.created and not second.created
    assert second.incident.pk == first.incident.pk
    second.incident.refresh_from_db()
    assert second.incident.severity == Severity.CRITICAL
    assert second.incident.timeline.filter(kind=EventKind.ALERT).count() == 2


def test_open_or_update_reopens_within_window_and_opens_new_after(responder):
    opened = services.open_or_update_incident(fingerprint="fp-2", title="Errors", severity=Severity.HIGH)
    services.transition_incident(incident=opened.incident, to=Status.RESOLVED, user=responder)
    again = services.open_or_update_incident(
        fingerprint="fp-2", title="Errors", severity=Severity.HIGH, reopen_within=timedelta(minutes=10)
    )
    assert again.reopened and again.incident.pk == opened.incident.pk
    services.transition_incident(incident=again.incident, to=Status.RESOLVED, user=responder)
    fresh = services.open_or_update_incident(fingerprint="fp-2", title="Errors", severity=Severity.HIGH)
    assert fresh.created and fresh.incident.pk != opened.incident.pk
