"""Changes: recorded by CI/CD through the API or `manage.py record_change` (idempotent on the external
id), listed with filters, and collected as evidence — a deploy just before the onset is a bad-deploy
hypothesis."""
from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from investigation.models import Change, ChangeSource, EvidenceKind

from ..factories import ServiceFactory
from .factories import ChangeFactory

pytestmark = pytest.mark.django_db
CHANGES = "/api/v1/changes/"


@pytest.fixture
def payment(db):
    return ServiceFactory(slug="payment")


def test_ci_records_a_deploy_and_a_retry_with_the_same_id_is_the_same_change(api, responder, payment):
    body = {"service": "payment", "version": "v1.2.3", "author": "ci", "url": "https://ci.example/run/42",
            "occurred_at": "2026-01-31T10:01:00Z", "external_id": "ci-run-42"}
    client = api.as_user(responder)
    first = client.post(CHANGES, body, format="json")
    assert first.status_code == 201, first.json()
    again = client.post(CHANGES, body | {"version": "v9"}, format="json")
    assert again.status_code == 200 and again.json()["id"] == first.json()["id"]
    change = Change.objects.get()
    assert (change.version, change.source, change.recorded_by) == ("v1.2.3", ChangeSource.API, responder)
    assert first.json()["service"] == "payment" and first.json()["kind"] == "deploy"


def test_changes_without_an_external_id_are_each_recorded(api, responder, payment):
    client = api.as_user(responder)
    for _ in range(2):
        assert client.post(CHANGES, {"service": "payment", "version": "v2"}, format="json").status_code == 201
    assert Change.objects.count() == 2


@pytest.mark.parametrize("body, field", [
    ({"version": "v1"}, "service"),
    ({"service": "nope", "version": "v1"}, "service"),
    ({"service": "payment", "version": "v1", "kind": "magic"}, "kind"),
    ({"service": "payment", "version": "v1", "url": "not a url"}, "url"),
    ({"service": "payment", "version": "v1", "occurred_at": "yesterday"}, "occurred_at"),
])
def test_bad_changes_are_400_naming_the_field(api, responder, payment, body, field):
    response = api.as_user(responder).post(CHANGES, body, format="json")
    assert response.status_code == 400
    assert field in response.json()["errors"] and response.json()["code"] == "invalid"


def test_a_change_in_the_future_is_refused(api, responder, payment):
    later = (timezone.now() + timedelta(days=1)).isoformat()
    response = api.as_user(responder).post(CHANGES, {"service": "payment", "version": "v1", "occurred_at": later},
                                           format="json")
    assert response.status_code == 400 and "occurred_at" in response.json()["errors"]


def test_viewers_list_changes_filtered_by_service_and_since_but_cannot_record(api, viewer, payment):
    other = ServiceFactory(slug="checkout")
    now = timezone.now()
    recent = ChangeFactory(service=payment, occurred_at=now - timedelta(minutes=5))
    ChangeFactory(service=payment, occurred_at=now - timedelta(days=2))
    ChangeFactory(service=other, occurred_at=now - timedelta(minutes=1))
    client = api.as_user(viewer)
    since = (now - timedelta(hours=1)).isoformat().replace("+00:00", "Z")
    body = client.get(CHANGES, {"service": "payment", "since": since}).json()
    assert [c["id"] for c in body["results"]] == [recent.pk]
    assert client.get(CHANGES).json()["count"] == 3
    assert client.get(CHANGES, {"since": "soon"}).status_code == 400
    assert client.post(CHANGES, {"service": "payment", "version": "v1"}, format="json").status_code == 403


def test_record_change_command_is_idempotent_on_its_id(payment, capsys):
    args = ["--service", "payment", "--version", "v1.2.3", "--author", "ci", "--url", "https://ci.example/42",
            "--at", "2026-01-31T10:01:00Z", "--kind", "deploy", "--id", "ci-42"]
    call_command("record_change", *args)
    call_command("record_change", *args)
    out = capsys.readouterr().out
    assert "recorded: change" in out and "already recorded: change" in out
    change = Change.objects.get()
    assert change.occurred_at.isoformat() == "2026-01-31T10:01:00+00:00" and change.author == "ci"


@pytest.mark.parametrize("args, message", [
    (["--service", "ghost", "--version", "v1"], "unknown service 'ghost'"),
    (["--service", "payment", "--version", "v1", "--at", "noon"], "not an ISO 8601 time"),
    (["--service", "payment", "--version", "v1", "--url", "ftp:/x"], "url"),
])
def test_record_change_command_refuses_bad_input_with_one_line(payment, args, message):
    with pytest.raises(CommandError, match=message):
        call_command("record_change", *args)


def test_a_deploy_just_before_the_onset_becomes_a_bad_deploy_hypothesis(investigation_settings, demo_catalog,
                                                                         monkeypatch):
    from investigation import services
    from investigation.collectors import registry
    from investigation.models import Hypothesis, HypothesisKind, Trigger

    from .test_workflow import FixedMetrics, open_incident

    monkeypatch.setattr(registry, "collectors", lambda: [FixedMetrics(), registry.ChangesCollector()])
    now = timezone.now()
    services.record_change(service=demo_catalog["payment"], version="v2.0.0", author="ci",
                           occurred_at=now - timedelta(seconds=90), external_id="ci-7")
    services.record_change(service=demo_catalog["catalog"], version="v9", occurred_at=now - timedelta(days=3))
    incident = open_incident(demo_catalog, started_at=now - timedelta(seconds=40))
    run = services.execute_run(services.start_investigation(incident=incident, trigger=Trigger.MANUAL, queue=False).pk)

    changes = run.evidence.filter(kind=EvidenceKind.CHANGES)
    assert [c.service for c in changes] == ["payment"], "the old catalog change is outside the lookback"
    assert changes.get().score > 0.9 and "deploy of payment v2.0.0 by ci" in changes.get().finding
    top = Hypothesis.objects.filter(incident=incident).order_by("rank").first()
    assert (top.kind, top.service) == (HypothesisKind.BAD_DEPLOY, "payment")
    assert top.title == "Bad deploy of payment v2.0.0" and "Roll back payment" in top.next_step
    assert top.evidence.filter(kind=EvidenceKind.CHANGES).exists()
    assert "deploy of payment v2.0.0" in run.summary
