"""The fire drill: inject each demo fault in turn, watch detection catch it, recover, and check
that the incident resolves by itself. Used by `manage.py firedrill` and bench/mttd.py.

With `compare_remediation` it also runs each fault twice — automatic remediation allowed, and not
(the caller's switch: the kill switch) — and reports MTTR, injected → incident resolved, for both
(`manage.py firedrill --compare-remediation`, bench/remediate.py --compare).

It only observes the database that the running detection writes; it never opens or resolves an
incident itself, so what it reports is what the product did.
"""
from __future__ import annotations

import statistics
import time
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Callable

from django.apps import apps
from django.conf import settings
from django.utils import timezone

from incidents.models import EventKind, Incident, Status, TimelineEvent

from .chaos import ChaosClient, ChaosError
from .models import Alert

FIRING_KINDS = (EventKind.ALERT, EventKind.METRIC_ANOMALY, EventKind.LOG_SPIKE, EventKind.POD_CRASH, EventKind.SLO_BURN)


@dataclass(frozen=True)
class Fault:
    kind: str  # error | latency | crash
    service: str
    value: float = 0.0  # error rate, or added milliseconds

    @classmethod
    def parse(cls, text: str) -> "Fault":
        """'error:payment:0.5', 'latency:checkout:1500', 'crash:catalog'."""
        parts = text.split(":")
        if len(parts) not in (2, 3) or parts[0] not in ("error", "latency", "crash"):
            raise ChaosError(f"bad fault {text!r}; use error:SERVICE:RATE, latency:SERVICE:MS or crash:SERVICE")
        try:
            value = float(parts[2]) if len(parts) == 3 else 0.0
        except ValueError:
            raise ChaosError(f"bad fault value in {text!r}") from None
        return cls(parts[0], parts[1], value)

    def __str__(self) -> str:
        suffix = {"error": f" {self.value:g}", "latency": f" +{self.value:g}ms"}.get(self.kind, "")
        return f"{self.kind} {self.service}{suffix}"

    def inject(self, chaos: ChaosClient) -> None:
        if self.kind == "error":
            chaos.fail(self.service, self.value)
        elif self.kind == "latency":
            chaos.latency(self.service, self.value)
        else:
            chaos.crash(self.service)


DEFAULT_FAULTS = [Fault("error", "payment", 0.5), Fault("latency", "checkout", 1500), Fault("crash", "catalog"),
                  Fault("error", "database", 0.3)]


@dataclass
class DrillResult:
    fault: Fault
    incident: str | None = None
    rules: list[str] = field(default_factory=list)
    mttd_seconds: float | None = None
    auto_resolved: bool | None = None
    resolve_seconds: float | None = None
    top_hypothesis: str | None = None  # the investigation's most likely service
    hypothesis_right: bool | None = None  # ... is the service the fault was injected into


INVESTIGATION_TIMEOUT = 30.0


def top_hypothesis(incident_id: int, timeout: float = INVESTIGATION_TIMEOUT) -> str | None:
    """The service of the incident's top hypothesis once its investigation runs have finished
    (bounded wait). Read through the app registry: detection does not import investigation."""
    try:
        Run = apps.get_model("investigation", "InvestigationRun")
        Hypothesis = apps.get_model("investigation", "Hypothesis")
    except LookupError:
        return None
    runs = Run.objects.filter(incident_id=incident_id)
    wait_until(lambda: runs.exists() and not runs.filter(status__in=["queued", "running"]).exists(), timeout)
    top = Hypothesis.objects.filter(incident_id=incident_id).exclude(status="rejected").order_by("rank", "id").first()
    return top.service if top else None


def first_firing_since(since: datetime) -> TimelineEvent | None:
    """The first alert-like timeline entry (FIRING) on any incident after `since`."""
    return (
        TimelineEvent.objects.filter(kind__in=FIRING_KINDS, occurred_at__gte=since, message__startswith="FIRING")
        .select_related("incident")
        .order_by("occurred_at")
        .first()
    )


def wait_until(predicate, timeout: float, interval: float = 0.5):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    return None


def run_fault(chaos: ChaosClient, fault: Fault, *, detect_timeout: float, resolve_timeout: float,
              log=lambda message: None) -> DrillResult:
    result = DrillResult(fault)
    injected_at = timezone.now()
    log(f"injecting {fault}")
    fault.inject(chaos)
    try:
        event = wait_until(lambda: first_firing_since(injected_at), detect_timeout)
    finally:
        chaos.recover(fault.service)
    recovered_at = timezone.now()
    result.rules = sorted({
        f"{name} ({service or '-'})"
        for name, service in Alert.objects.filter(firing_since__gte=injected_at).values_list("name", "service__slug")
    })
    if event is None:
        log(f"nothing caught {fault} within {detect_timeout:.0f}s")
        return result
    incident = event.incident
    result.incident = incident.key
    result.mttd_seconds = round((event.occurred_at - injected_at).total_seconds(), 1)
    result.top_hypothesis = top_hypothesis(incident.pk)
    result.hypothesis_right = None if result.top_hypothesis is None else result.top_hypothesis == fault.service
    log(f"{incident.key} caught it after {result.mttd_seconds}s; top hypothesis {result.top_hypothesis or '—'}; "
        "recovered, waiting for auto-resolve")
    resolved = wait_until(lambda: Incident.objects.filter(pk=incident.pk, status=Status.RESOLVED).exists(),
                          resolve_timeout, interval=1.0)
    result.auto_resolved = bool(resolved)
    if resolved:
        incident.refresh_from_db()
        result.resolve_seconds = round((incident.resolved_at - recovered_at).total_seconds(), 1)
    return result


def quiet_period(seconds: float = 0) -> None:
    """Wait until no automatically opened incident is active (so faults don't overlap)."""
    wait_until(lambda: not Incident.objects.active().filter(source__in=["rule", "external_alert"]).exists(),
               seconds or 1, interval=1.0)


def format_table(results: list[DrillResult]) -> str:
    rows = [("fault", "incident", "MTTD s", "auto-resolved", "resolve s", "top hypothesis", "rules that fired")]
    for r in results:
        rows.append((
            str(r.fault), r.incident or "—", "—" if r.mttd_seconds is None else f"{r.mttd_seconds:g}",
            {True: "yes", False: "NO", None: "—"}[r.auto_resolved],
            "—" if r.resolve_seconds is None else f"{r.resolve_seconds:g}",
            "—" if r.top_hypothesis is None else f"{r.top_hypothesis} ({'right' if r.hypothesis_right else 'WRONG'})",
            "; ".join(r.rules) or "—",
        ))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths)) for row in rows]
    lines.insert(1, "  ".join("-" * width for width in widths))
    missed = [str(r.fault) for r in results if r.incident is None]
    lines.append("")
    lines.append("nothing caught: " + (", ".join(missed) if missed else "none — every fault was detected"))
    return "\n".join(lines)



# -- MTTR with and without automatic remediation --------------------------------------------------------

# The "without" baseline: nothing automatic runs (kill switch), and the drill plays the person who
# fixes the fault this long after detection. 5 minutes is a quick page → acknowledge → fix; a real
# on-call response is often longer, which only widens the gap. Both runs of a fault get the same
# bound: when automatic remediation has not cleared the fault by then, the drill lifts it as well.
HUMAN_RESPONSE_SECONDS = 300.0


@dataclass
class RecoveryRun:
    """One fault, one mode. MTTR here is injected → incident resolved (the incident's own
    resolved_at), so detection, remediation, verification and auto-resolve are all in it."""

    fault: Fault
    automatic: bool  # automatic remediation allowed in this run
    incident: str | None = None
    mttd_seconds: float | None = None
    cleared_by: str | None = None  # "remediation" | "drill" (the simulated person) | "someone else"
    cleared_seconds: float | None = None  # injected → the fault was gone
    mttr_seconds: float | None = None
    actions: list[str] = field(default_factory=list)  # the incident's remediation actions and outcomes


def remediation_actions(incident_id: int) -> list[dict]:
    """The incident's remediation actions, oldest first (through the app registry: detection does
    not import remediation)."""
    try:
        Action = apps.get_model("remediation", "Action")
    except LookupError:
        return []
    return list(Action.objects.filter(incident_id=incident_id).order_by("created_at", "id")
                .values("kind", "target", "status", "verification", "automatic", "confidence"))


def describe_action(row: dict) -> str:
    how = "automatic" if row["automatic"] else "not run automatically"
    confidence = "" if row["confidence"] is None else f" at {row['confidence']:.2f}"
    outcome = row["status"] + (f", {row['verification'].replace('_', ' ')}"
                               if row["verification"] not in ("", "none") else "")
    return f"{row['kind']} {row['target']}: {outcome} ({how}{confidence})"


def record_resolution(run: RecoveryRun, incident: Incident, injected_at: datetime) -> RecoveryRun:
    """Fill the run's MTTR and actions from the database's rows (resolved_at − injected_at)."""
    run.incident = incident.key
    rows = remediation_actions(incident.pk)
    run.actions = [describe_action(row) for row in rows]
    if run.cleared_by is None and run.cleared_seconds is not None:
        run.cleared_by = "remediation" if any(row["status"] == "succeeded" for row in rows) else "someone else"
    if incident.status == Status.RESOLVED and incident.resolved_at and incident.resolved_at >= injected_at:
        run.mttr_seconds = round((incident.resolved_at - injected_at).total_seconds(), 1)
    return run


def fault_active(chaos: ChaosClient, service: str) -> bool:
    state = chaos.status()["services"].get(service) or {}
    return bool(state.get("faults")) or state.get("up") is False


def run_recovery(chaos: ChaosClient, fault: Fault, *, automatic: bool, human_response: float = HUMAN_RESPONSE_SECONDS,
                 detect_timeout: float = 90, resolve_timeout: float = 240, log=lambda message: None) -> RecoveryRun:
    """Inject, wait for detection, then leave the fault alone until it is gone (cleared by
    remediation) or `human_response` seconds after detection have passed (the drill lifts it, as
    the person would); then wait for the incident to resolve by itself. The caller sets the mode."""
    run = RecoveryRun(fault, automatic)
    injected_at = timezone.now()
    log(f"injecting {fault} (automatic remediation {'on' if automatic else 'off'})")
    fault.inject(chaos)
    try:
        event = wait_until(lambda: first_firing_since(injected_at), detect_timeout)
        if event is None:
            log(f"nothing caught {fault} within {detect_timeout:.0f}s")
            return run
        incident = event.incident
        run.incident = incident.key
        run.mttd_seconds = round((event.occurred_at - injected_at).total_seconds(), 1)
        lift_at = event.occurred_at + timedelta(seconds=human_response)
        gone = wait_until(lambda: not fault_active(chaos, fault.service),
                          (lift_at - timezone.now()).total_seconds(), interval=1.0)
        if not gone:
            chaos.recover(fault.service)
            run.cleared_by = "drill"
        run.cleared_seconds = round((timezone.now() - injected_at).total_seconds(), 1)
    finally:
        chaos.recover(fault.service)  # idempotent; never leave a fault behind
    log(f"{incident.key} caught it after {run.mttd_seconds}s; fault gone after {run.cleared_seconds}s "
        f"({run.cleared_by or 'not the drill'}); waiting for auto-resolve")
    wait_until(lambda: Incident.objects.filter(pk=incident.pk, status=Status.RESOLVED).exists(), resolve_timeout,
               interval=1.0)
    incident.refresh_from_db()
    return record_resolution(run, incident, injected_at)


def default_settle_seconds() -> float:
    """Spacing between one fault's end and the next injection: the investigation looks this far
    before an incident's start, and the previous fault's tail in that window would mislead its
    ranking — and with it the confidence automatic remediation is judged by."""
    return float(getattr(settings, "INVESTIGATION_WINDOW_LEAD_SECONDS", 0)) + 15


def compare_remediation(chaos: ChaosClient, faults: list[Fault], *,
                        automatic_remediation: Callable[[bool], AbstractContextManager], n: int = 1,
                        human_response: float = HUMAN_RESPONSE_SECONDS, detect_timeout: float = 90,
                        resolve_timeout: float = 240, settle: float | None = None,
                        log=lambda message: None) -> list[RecoveryRun]:
    """Each fault n times in both modes, the order alternating per repetition so slow drift of the
    stack does not favour one mode. `automatic_remediation(allowed)` sets the mode for a run. Each
    injection waits for the previous incident to resolve and `settle` seconds after the previous
    fault was gone (default: the investigation's window lead + 15 s)."""
    settle = default_settle_seconds() if settle is None else settle
    runs, last_gone = [], None
    for i in range(n):
        for fault in faults:
            for automatic in ((True, False) if i % 2 == 0 else (False, True)):
                quiet_period(resolve_timeout)
                if last_gone is not None:
                    time.sleep(max(0.0, last_gone + settle - time.monotonic()))
                with automatic_remediation(automatic):
                    runs.append(run_recovery(chaos, fault, automatic=automatic, human_response=human_response,
                                             detect_timeout=detect_timeout, resolve_timeout=resolve_timeout, log=log))
                run = runs[-1]  # the fault was gone (mttr − cleared) seconds ago; unresolved: count from now
                since_gone = run.mttr_seconds - run.cleared_seconds if run.mttr_seconds and run.cleared_seconds else 0
                last_gone = time.monotonic() - max(0.0, since_gone)
    return runs


def _p50(values: list[float]) -> float | None:
    return round(statistics.median(values), 1) if values else None


def _difference(without: float | None, with_: float | None) -> float | None:
    return None if without is None or with_ is None else round(without - with_, 1)


def summarize_mttr(runs: list[RecoveryRun], *, human_response: float = HUMAN_RESPONSE_SECONDS) -> dict:
    """MTTR p50 per fault and over all runs, with and without automatic remediation, and the
    difference (without − with: seconds saved). A run that was not detected or did not resolve
    within the drill's bounds has no MTTR; it is counted, not guessed."""
    def mttrs(items):
        return [r.mttr_seconds for r in items if r.mttr_seconds is not None]

    per_fault = {}
    for fault in dict.fromkeys(r.fault for r in runs):
        with_ = [r for r in runs if r.fault == fault and r.automatic]
        without = [r for r in runs if r.fault == fault and not r.automatic]
        figures = {"with_p50_s": _p50(mttrs(with_)), "without_p50_s": _p50(mttrs(without)),
                   "with_runs": len(with_), "without_runs": len(without),
                   "with_missing": len(with_) - len(mttrs(with_)), "without_missing": len(without) - len(mttrs(without)),
                   "cleared_by_remediation": sum(r.cleared_by == "remediation" for r in with_),
                   "with_incidents": [r.incident for r in with_], "without_incidents": [r.incident for r in without]}
        figures["difference_s"] = _difference(figures["without_p50_s"], figures["with_p50_s"])
        per_fault[str(fault)] = figures
    with_all, without_all = [r for r in runs if r.automatic], [r for r in runs if not r.automatic]
    summary = {"human_response_s": human_response, "runs": len(runs),
               "with_p50_s": _p50(mttrs(with_all)), "without_p50_s": _p50(mttrs(without_all)),
               "with_missing": len(with_all) - len(mttrs(with_all)),
               "without_missing": len(without_all) - len(mttrs(without_all)),
               "cleared_by_remediation": sum(r.cleared_by == "remediation" for r in with_all),
               "per_fault": per_fault}
    summary["difference_s"] = _difference(summary["without_p50_s"], summary["with_p50_s"])
    return summary


def _cell(value) -> str:
    return "—" if value is None else f"{value:g}"


def format_mttr_runs(runs: list[RecoveryRun]) -> str:
    rows = [("fault", "automatic", "incident", "MTTD s", "fault gone s", "cleared by", "MTTR s", "remediation")]
    for r in runs:
        rows.append((str(r.fault), "on" if r.automatic else "off", r.incident or "—", _cell(r.mttd_seconds),
                     _cell(r.cleared_seconds), r.cleared_by or "—", _cell(r.mttr_seconds), "; ".join(r.actions) or "—"))
    return _table(rows)


def format_mttr_table(summary: dict) -> str:
    """One row per fault and a p50 row: MTTR with, without, and the difference."""
    rows = [("fault", "MTTR with s (p50)", "MTTR without s (p50)", "difference s", "cleared by remediation")]
    for fault, f in summary["per_fault"].items():
        rows.append((fault, _cell(f["with_p50_s"]), _cell(f["without_p50_s"]), _cell(f["difference_s"]),
                     f"{f['cleared_by_remediation']}/{f['with_runs']}"))
    with_runs = sum(f["with_runs"] for f in summary["per_fault"].values())
    rows.append(("all faults", _cell(summary["with_p50_s"]), _cell(summary["without_p50_s"]),
                 _cell(summary["difference_s"]), f"{summary['cleared_by_remediation']}/{with_runs}"))
    lines = [_table(rows), "",
             f"MTTR = fault injected → incident resolved (its resolved_at). Without: kill switch on, the drill lifts "
             f"the fault {summary['human_response_s']:g}s after detection (a person's response), so that MTTR is "
             f"bounded by it; with: the same bound, but remediation may clear the fault first."]
    missing = summary["with_missing"] + summary["without_missing"]
    if missing:
        lines.append(f"runs without an MTTR (not detected or not resolved in time): {summary['with_missing']} with, "
                     f"{summary['without_missing']} without")
    return "\n".join(lines)


def _table(rows: list[tuple]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines)
