"""Rules that stop: a disabled or deleted rule's alerts resolve (saying why) and their incidents
recover; the rule-health event follows its rows; auto-resolve runs may overlap; grouping locks
per connected part of the graph, not globally."""
import threading
from datetime import timedelta

import pytest
from django.db import connection, transaction
from django.utils import timezone
from rest_framework.test import APIClient

from detection import evaluation, services
from detection.evaluation import Observation
from detection.models import Alert, AlertState, DetectionRule, RuleHealth, RuleKind
from incidents import services as incident_services
from incidents.models import Incident, Severity, Status
from reliability_studio.telemetry.errors import TelemetryError

from ..factories import ServiceFactory

JOIN = 10  # seconds: a bound for a thread that should finish at once, not a synchronisation


@pytest.fixture
def shop(db):
    s = {slug: ServiceFactory(slug=slug) for slug in ["frontend", "checkout", "payment", "catalog", "billing"]}
    s["frontend"].depends_on.set([s["checkout"], s["catalog"]])
    s["checkout"].depends_on.set([s["payment"]])
    return s


@pytest.fixture
def rule(shop):
    return DetectionRule.objects.create(name="High error ratio", kind=RuleKind.THRESHOLD, query="x", threshold=0.05,
                                        severity=Severity.HIGH, for_seconds=0, recovery_hold_seconds=30)


def fire(rule, *slugs, now=None):
    observations = [Observation({"service": slug}, 0.5, True) for slug in slugs]
    return services.apply_observations(rule=rule, observations=observations, now=now or timezone.now())


def admin_client(make_user):
    from reliability_studio.access import Role

    client = APIClient()
    client.force_authenticate(make_user(Role.ADMIN))
    return client


# --- disabled and deleted rules ------------------------------------------------------------------

@pytest.mark.django_db
def test_disabling_a_rule_resolves_its_alerts_and_the_incident_recovers(rule, make_user, published,
                                                                        django_capture_on_commit_callbacks):
    fire(rule, "payment")
    incident = Incident.objects.get()
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client(make_user).patch(f"/api/v1/rules/{rule.pk}/", {"enabled": False}, format="json")
    assert response.status_code == 200, response.content
    assert Alert.objects.get().state == AlertState.RESOLVED
    assert incident.timeline.filter(message="RESOLVED: High error ratio (payment): its rule was disabled").exists()
    assert ("detection.updated", {"rule": rule.pk, "name": rule.name, "change": "updated", "enabled": False}) in published

    services.auto_resolve_incidents()
    incident.refresh_from_db()
    assert incident.status == Status.MITIGATED


@pytest.mark.django_db
def test_deleting_a_rule_keeps_its_alerts_resolved_as_evidence_and_the_incident_recovers(rule, make_user):
    fire(rule, "payment")
    incident = Incident.objects.get()
    response = admin_client(make_user).delete(f"/api/v1/rules/{rule.pk}/")
    assert response.status_code == 204, response.content
    alert = Alert.objects.get()  # not cascaded away with the rule
    assert alert.rule_id is None and alert.state == AlertState.RESOLVED and alert.incident_id == incident.pk
    assert incident.timeline.filter(message__endswith="its rule was deleted").exists()

    services.auto_resolve_incidents()
    incident.refresh_from_db()
    assert incident.status == Status.MITIGATED


@pytest.mark.django_db
def test_auto_resolve_does_not_wait_forever_for_alerts_of_a_rule_disabled_elsewhere(rule):
    fire(rule, "payment")
    DetectionRule.objects.filter(pk=rule.pk).update(enabled=False)  # e.g. a bulk update, or a race with evaluation
    services.auto_resolve_incidents()
    assert Alert.objects.get().state == AlertState.RESOLVED
    incident = Incident.objects.get()
    assert incident.status == Status.MITIGATED
    assert incident.timeline.filter(message__endswith="its rule is disabled").exists()


@pytest.mark.django_db
def test_disabling_works_while_the_source_is_down(rule, make_user, settings):
    settings.PROMETHEUS_URL = "http://127.0.0.1:9"  # nothing listens: asking the source would refuse
    response = admin_client(make_user).patch(f"/api/v1/rules/{rule.pk}/", {"enabled": False}, format="json")
    assert response.status_code == 200, response.content
    assert DetectionRule.objects.get().enabled is False


@pytest.mark.django_db
def test_enabling_a_rule_schedules_it_now(rule):
    services.disable_rule(rule=rule)
    DetectionRule.objects.filter(pk=rule.pk).update(next_evaluation_at=timezone.now() + timedelta(days=1))
    services.enable_rule(rule=rule)
    assert DetectionRule.objects.get().next_evaluation_at <= timezone.now()


# --- the rule-health event follows the rows --------------------------------------------------------

@pytest.mark.django_db(transaction=True)
def test_rule_health_event_is_sent_after_the_health_is_written(rule, monkeypatch):
    def source_down(rule, now):
        raise TelemetryError("prometheus is unreachable")

    monkeypatch.setattr(evaluation, "evaluate", source_down)
    seen = []
    from incidents import events

    def send(groups, message, incident_id=None):
        if "health" in message["data"]:  # what a client re-reading on the event would see
            seen.append((message["data"]["health"], DetectionRule.objects.get(pk=rule.pk).health))

    monkeypatch.setattr(events, "_send", send)
    services.evaluate_rule(rule=rule)
    assert seen == [(RuleHealth.UNKNOWN, RuleHealth.UNKNOWN)]


# --- concurrency ---------------------------------------------------------------------------------

def _in_thread(target):
    """Run `target` on its own database connection; returns (thread, outcome dict)."""
    outcome = {}

    def run():
        try:
            outcome["value"] = target()
        except Exception as exc:  # reported by the test
            outcome["error"] = exc
        finally:
            connection.close()

    thread = threading.Thread(target=run)
    thread.start()
    return thread, outcome


@pytest.mark.django_db(transaction=True)
def test_overlapping_auto_resolve_skips_an_incident_someone_holds_and_resolves_the_rest(rule):
    fire(rule, "payment", "billing")  # unconnected: two incidents
    DetectionRule.objects.filter(pk=rule.pk).update(enabled=False)
    services.resolve_alerts_of_retired_rules()
    held, free = Incident.objects.order_by("pk")
    locked, release = threading.Event(), threading.Event()

    def other_run():  # another run (or a person) mitigates `held` and has not committed yet
        with transaction.atomic():
            incident_services.transition_incident(incident=held, to=Status.MITIGATED, actor="other")
            locked.set()
            release.wait(JOIN)

    holder, holder_outcome = _in_thread(other_run)
    assert locked.wait(JOIN)
    runner, outcome = _in_thread(lambda: services.auto_resolve_incidents())
    runner.join(JOIN)
    finished_while_held = not runner.is_alive()
    release.set()
    holder.join(JOIN)
    runner.join(JOIN)
    assert finished_while_held, "auto-resolve waited for a row another run holds"
    assert "error" not in outcome and "error" not in holder_outcome
    assert [i.pk for i in outcome["value"]] == [free.pk]
    assert Incident.objects.get(pk=free.pk).status == Status.MITIGATED
    assert Incident.objects.get(pk=held.pk).status == Status.MITIGATED  # the other run's change stands


@pytest.mark.django_db(transaction=True)
def test_grouping_locks_per_connected_component(rule, shop):
    def alert_on(slug):
        return Alert(fingerprint=f"t|{slug}", name="x", severity=Severity.HIGH, service=shop[slug])

    key = services.grouping_lock_key
    assert key(alert_on("frontend")) == key(alert_on("payment")) == key(alert_on("catalog"))
    assert key(alert_on("billing")) != key(alert_on("payment"))
    assert key(Alert(fingerprint="a")) != key(Alert(fingerprint="b"))

    held, release = threading.Event(), threading.Event()

    def hold_payment_component():
        with transaction.atomic():
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_xact_lock(%s, %s)", list(key(alert_on("payment"))))
            held.set()
            release.wait(JOIN)

    holder, _ = _in_thread(hold_payment_component)
    assert held.wait(JOIN)
    # billing is not connected to payment: its alert fires and opens its incident meanwhile.
    runner, outcome = _in_thread(lambda: fire(rule, "billing"))
    runner.join(JOIN)
    finished_while_held = not runner.is_alive()
    release.set()
    holder.join(JOIN)
    runner.join(JOIN)
    assert finished_while_held, "an unrelated service waited for another component's grouping lock"
    assert "error" not in outcome
    assert Incident.objects.get().primary_service.slug == "billing"


@pytest.mark.django_db(transaction=True)
def test_connected_services_firing_at_once_still_open_one_incident(rule, shop):
    slugs = ["frontend", "checkout", "payment", "catalog"]
    barrier = threading.Barrier(len(slugs))
    now = timezone.now()

    def fire_one(slug):
        def run():
            barrier.wait(JOIN)
            return fire(rule, slug, now=now)
        return run

    threads = [_in_thread(fire_one(slug)) for slug in slugs]
    for thread, _ in threads:
        thread.join(JOIN)
    assert all("error" not in outcome for _, outcome in threads), [o.get("error") for _, o in threads]
    incident = Incident.objects.get()
    assert set(incident.affected_services.values_list("slug", flat=True)) == set(slugs)
