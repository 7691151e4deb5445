"""The fire drill: inject each demo fault in turn, watch detection catch it, recover, and check
that the incident resolves by itself. Used by `manage.py firedrill` and bench/mttd.py.

It only observes the database that the running detection writes; it never opens or resolves an
incident itself, so what it reports is what the product did.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime

from django.apps import apps
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

