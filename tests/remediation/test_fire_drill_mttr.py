"""The fire drill's MTTR comparison with and without automatic remediation: MTTR from the
incident rows, the summary per fault and p50, the kill switch the drill engages for the run
without (and always releases), and the refusals that keep the comparison honest."""
from datetime import timedelta

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from detection.firedrill import (
    Fault,
    RecoveryRun,
    format_mttr_table,
    record_resolution,
    summarize_mttr,
)
from incidents.models import Status
from remediation import guardrails
from remediation.drill import DrillPreconditionError, automatic_remediation, check_automation_possible
from remediation.models import Action, ActionStatus, AuditEvent, AuditRecord, Switchboard, Verification

from ..factories import IncidentFactory

PAYMENT, CATALOG = Fault("error", "payment", 0.5), Fault("crash", "catalog")

RUNBOOK = """
runbooks:
  - name: demo-recover
    title: Recover
    match: {services: [checkout]}
    steps:
      - name: recover-suspect
        action: demo.recover
        params: {service: $service}
        %s
"""


def _resolved(injected_at, seconds, **fields):
    return IncidentFactory(status=Status.RESOLVED, started_at=injected_at, detected_at=injected_at + timedelta(seconds=8),
                           resolved_at=injected_at + timedelta(seconds=seconds), **fields)


def _run(fault, automatic, incident, injected_at, cleared_by=None, cleared_seconds=12.0):
    run = RecoveryRun(fault, automatic, cleared_by=cleared_by, cleared_seconds=cleared_seconds)
    return record_resolution(run, incident, injected_at)


@pytest.mark.django_db
def test_mttr_with_and_without_comes_from_the_incident_rows():
    t0 = timezone.now() - timedelta(hours=1)
    fast = _resolved(t0, 64.9)
    Action.objects.create(incident=fast, runbook_name="demo-recover", step_name="recover-suspect", kind="demo.recover",
                          target="demo/payment", status=ActionStatus.SUCCEEDED, automatic=True, confidence=0.91,
                          verification=Verification.EFFECTIVE)
    with_payment = _run(PAYMENT, True, fast, t0)
    t1 = t0 + timedelta(minutes=10)
    without_payment = _run(PAYMENT, False, _resolved(t1, 340.2), t1, cleared_by="drill", cleared_seconds=308.0)
    t2 = t0 + timedelta(minutes=20)
    with_catalog = _run(CATALOG, True, _resolved(t2, 50.0), t2)  # gone, but no action of ours ran
    t3 = t0 + timedelta(minutes=30)
    never = IncidentFactory(status=Status.OPEN, started_at=t3, detected_at=t3)
    without_catalog = _run(CATALOG, False, never, t3, cleared_by="drill")

    assert with_payment.mttr_seconds == 64.9 and with_payment.cleared_by == "remediation"
    assert with_payment.actions == ["demo.recover demo/payment: succeeded, effective (automatic at 0.91)"]
    assert without_payment.mttr_seconds == 340.2 and without_payment.actions == []
    assert with_catalog.cleared_by == "someone else"
    assert without_catalog.mttr_seconds is None  # not resolved: counted as missing, never guessed

    summary = summarize_mttr([with_payment, without_payment, with_catalog, without_catalog], human_response=300)
    assert summary["per_fault"]["error payment 0.5"] == {
        "with_p50_s": 64.9, "without_p50_s": 340.2, "difference_s": 275.3, "with_runs": 1, "without_runs": 1,
        "with_missing": 0, "without_missing": 0, "cleared_by_remediation": 1,
        "with_incidents": [fast.key], "without_incidents": [without_payment.incident]}
    catalog = summary["per_fault"]["crash catalog"]
    assert catalog["without_p50_s"] is None and catalog["difference_s"] is None and catalog["without_missing"] == 1
    assert (summary["with_p50_s"], summary["without_p50_s"], summary["difference_s"]) == (57.5, 340.2, 282.7)
    assert summary["cleared_by_remediation"] == 1 and summary["without_missing"] == 1

    table = format_mttr_table(summary)
    assert "error payment 0.5" in table and "275.3" in table and "1/1" in table
    assert "all faults" in table and "bounded by it" in table and "1 without" in table


@pytest.mark.django_db
def test_an_incident_resolved_before_the_injection_has_no_mttr():
    """A reopened incident still carrying an older resolved_at must not give a negative MTTR."""
    injected_at = timezone.now()
    stale = _resolved(injected_at - timedelta(minutes=5), 60)
    assert _run(PAYMENT, True, stale, injected_at).mttr_seconds is None


@pytest.mark.django_db
def test_the_run_without_engages_the_kill_switch_and_always_releases_it():
    with automatic_remediation(False):
        engaged, why = guardrails.kill_switch()
        assert engaged and "fire drill" in why
        assert "kill switch is on" in guardrails.automation_refusal({"automatic": True, "auto_min_confidence": 0.1}, 0.9)
    assert guardrails.kill_switch() == (False, "")
    with pytest.raises(RuntimeError), automatic_remediation(False):
        raise RuntimeError("the drill failed half-way")
    assert guardrails.kill_switch() == (False, "")
    records = list(AuditRecord.objects.filter(event=AuditEvent.KILL_SWITCH).order_by("id").values_list("actor", "result"))
    assert records == [("fire drill", {"engaged": True}), ("fire drill", {"engaged": False})] * 2
    with automatic_remediation(True):
        assert guardrails.kill_switch() == (False, "")
    assert AuditRecord.objects.filter(event=AuditEvent.KILL_SWITCH).count() == 4


@pytest.mark.django_db
def test_a_kill_switch_someone_else_engaged_stays_engaged(admin_user):
    from remediation import services

    services.set_kill_switch(engaged=True, user=admin_user, reason="change freeze")
    with automatic_remediation(False):
        pass
    assert Switchboard.current().kill_switch
    with pytest.raises(DrillPreconditionError, match="kill switch is on"):
        check_automation_possible()


@pytest.mark.django_db
def test_nobody_but_an_admin_or_a_named_process_changes_the_kill_switch(responder):
    from remediation import services

    with pytest.raises(guardrails.NotAllowed):
        services.set_kill_switch(engaged=True, user=None)
    with pytest.raises(guardrails.NotAllowed):
        services.set_kill_switch(engaged=True, user=responder, actor="fire drill")
    assert not Switchboard.current().kill_switch


@pytest.mark.django_db
def test_the_comparison_needs_a_step_that_may_run_by_itself(load_runbook):
    load_runbook(RUNBOOK % "automatic: false")
    with pytest.raises(DrillPreconditionError, match="automatic: true"):
        check_automation_possible()
    load_runbook(RUNBOOK % "automatic: true\n        auto_min_confidence: 0.7")
    assert check_automation_possible() == ["demo-recover/recover-suspect (≥ 0.70)"]


@pytest.mark.django_db
def test_firedrill_refuses_bad_comparison_arguments_with_one_line(settings):
    settings.DEMO_CONTROL_URL = "http://127.0.0.1:9"  # nothing listens: refused before any fault
    with pytest.raises(CommandError, match="--n must be at least 1"):
        call_command("firedrill", "--compare-remediation", "--n", "0")
    with pytest.raises(CommandError, match="--human-response must not be negative"):
        call_command("firedrill", "--compare-remediation", "--human-response", "-5")
    with pytest.raises(CommandError, match="--settle must not be negative"):
        call_command("firedrill", "--compare-remediation", "--settle", "-1")
    with pytest.raises(CommandError, match="unreachable"):
        call_command("firedrill", "--compare-remediation")
