"""Multi-window multi-burn-rate alerts against the backfilled Prometheus: a 15× burn pages when
the Workbook's formula says, a 1× burn never pages, and a burn alert opens, escalates,
auto-resolves and reopens an incident through detection like any other signal."""
from datetime import datetime, timezone

import pytest

from detection import services as detection
from detection.models import Alert, AlertState
from incidents.models import EventKind, Incident, Severity, Status
from slos import services, windows
from slos.models import IncidentBudgetImpact

from .conftest import BURN15_END, BURN15_ONSET, END, H, M, make_slo, needs_prometheus

pytestmark = [pytest.mark.slow, pytest.mark.django_db, needs_prometheus]


def at(t: float) -> datetime:
    return datetime.fromtimestamp(t, tz=timezone.utc)


def evaluate(slo, t: float) -> None:
    services.recompute_slos(slos=[slo], now=at(t))
    slo.refresh_from_db()


def test_a_15x_burn_pages_within_the_workbook_detection_time(prom):
    slo = make_slo("burn15")  # 99.9 %: 1.5 % errors = 15× from BURN15_ONSET, clean before
    page_fast = windows.ALERT_ROWS[0]
    predicted = windows.time_to_fire(burn=15, threshold=windows.burn_threshold(page_fast, 30), long_window_seconds=3600)
    assert predicted == pytest.approx(57.6 * 60)
    step = 30
    fired_after = None
    for offset in range(50 * 60, 66 * 60, step):  # bounded scan of evaluation times
        evaluate(slo, BURN15_ONSET + offset)
        if "page_fast" in slo.alert_rows:
            fired_after = offset
            break
    assert fired_after is not None, "the page alert never fired"
    # Not before the formula allows, and within one evaluation step (plus one 15 s sample) after.
    assert predicted - 15 <= fired_after <= predicted + step + 15
    assert Alert.objects.get(fingerprint=f"slo:{slo.pk}").state == AlertState.FIRING


def test_a_1x_burn_never_pages(prom):
    slo = make_slo("burn1")  # exactly the budget: 0.1 % errors for days
    for hours in range(0, 72, 6):
        evaluate(slo, END - hours * H)
        assert slo.burn_rates["1h"] == pytest.approx(1.0, rel=1e-3)
        assert not [r for r in slo.alert_rows if r.startswith("page")]
    assert not Incident.objects.exists()


def test_burn_alert_opens_escalates_resolves_and_records_budget_impact(prom, settings,
                                                                       django_capture_on_commit_callbacks):
    settings.DETECTION_AUTO_RESOLVE_HOLD_SECONDS = {s: 0.0 for s in Severity.values}
    settings.SLO_SEVERITY_POLICY = "page_fast=critical,page_slow=high,ticket_fast=medium,ticket_slow=low"
    slo = make_slo("burn15")
    with django_capture_on_commit_callbacks(execute=True):
        evaluate(slo, BURN15_ONSET + 40 * M)  # below every threshold yet
        assert not Incident.objects.exists()
        evaluate(slo, BURN15_ONSET + 60 * M)  # page_fast: 1 h & 5 m above 14.4×
    incident = Incident.objects.get()
    assert incident.severity == Severity.CRITICAL and incident.status == Status.OPEN
    assert incident.labels["slo"] == slo.slug and incident.labels["slo_id"] == str(slo.pk)
    assert incident.primary_service.slug == "burn15"
    burn = incident.timeline.get(kind=EventKind.SLO_BURN)
    assert burn.data["value"] == pytest.approx(0.015 * 60 / 60 / 0.001, rel=0.05)  # ~15× over the last hour
    assert burn.data["detail"]["slo"] == slo.slug and "page_fast" in burn.data["detail"]["rows"]

    # The burn stops; once the 5-minute window is clean the alert resolves and the incident
    # auto-resolves through detection (mitigated, then resolved).
    with django_capture_on_commit_callbacks(execute=True):
        evaluate(slo, BURN15_END + 10 * M)
        alert = Alert.objects.get(fingerprint=f"slo:{slo.pk}")
        assert alert.state == AlertState.RESOLVED
        detection.auto_resolve_incidents()
        detection.auto_resolve_incidents()
    incident.refresh_from_db()
    assert incident.status == Status.RESOLVED

    # Resolution stored the budget the incident consumed (the hook runs after commit).
    impact = IncidentBudgetImpact.objects.get(incident=incident, slo=slo)
    assert impact.final and impact.error == ""
    expected = services.budget_consumed(slo, impact.start, impact.end)
    assert impact.consumed == pytest.approx(expected.consumed, rel=1e-6)
    assert impact.consumed > 0

    # The burn returns within the reopen window: the same incident reopens.
    with django_capture_on_commit_callbacks(execute=True):
        evaluate(slo, BURN15_ONSET + 62 * M)
    assert Incident.objects.count() == 1
    incident.refresh_from_db()
    assert incident.status == Status.OPEN and incident.reopened_count == 1


def test_budget_consumed_between_two_times_is_burn_times_duration_over_window(prom):
    slo = make_slo("burn15")
    used = services.budget_consumed(slo, at(BURN15_ONSET), at(BURN15_END))
    # 15× for 90 minutes of a 30-day window.
    assert used.consumed == pytest.approx(15 * 90 * 60 / (30 * 86400), rel=1e-3)
    assert used.consumed_minutes == pytest.approx(used.consumed * 43.2, rel=1e-9)
    assert used.bad == pytest.approx(0.015 * 5 * 90 * 60, rel=1e-3)
    quiet = services.budget_consumed(slo, at(BURN15_ONSET - 2 * H), at(BURN15_ONSET))
    assert quiet.consumed == pytest.approx(0, abs=1e-9)
    ghost = services.budget_consumed(make_slo("ghost"), at(END - H), at(END))
    assert ghost.consumed is None  # no data


def test_severity_follows_the_burn_through_the_policy(prom, settings, django_capture_on_commit_callbacks):
    settings.SLO_SEVERITY_POLICY = "page_fast=critical,page_slow=high,ticket_fast=medium,ticket_slow=low"
    slo = make_slo("burn15", severity_policy={"page_fast": "high", "page_slow": "medium"})
    with django_capture_on_commit_callbacks(execute=True):
        evaluate(slo, BURN15_ONSET + 60 * M)
    incident = Incident.objects.get()
    assert incident.severity == Severity.HIGH  # the SLO's own policy
    slo.severity_policy = {"page_fast": "critical"}
    slo.save()
    with django_capture_on_commit_callbacks(execute=True):
        evaluate(slo, BURN15_ONSET + 61 * M)
    incident.refresh_from_db()
    assert incident.severity == Severity.CRITICAL
    assert incident.timeline.filter(kind=EventKind.SLO_BURN, message__contains="Error-budget policy").exists()
