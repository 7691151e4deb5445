"""SLO writes: validation, the recompute cycle, burn alerts, and incident budget impact.

The cycle (`recompute_slos`) reads event counts from Prometheus (one query per window for every
batch of SLOs, see slos.promql), computes SLI, budget, burn rates, forecast and status, writes
each SLO's state in one `bulk_update` and its history point in one `bulk_create`, and feeds
the multi-window multi-burn-rate result to detection as a signal (`slo:<id>` alerts), so SLO
incidents open, group, auto-resolve and reopen through detection and incidents like any other.

A Prometheus that fails leaves each affected SLO's last values in place, marked stale, and its
alert state untouched: missing data neither opens nor closes an incident.
"""
from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.utils import timezone

from detection.models import Alert, AlertState
from detection.services import on_alert_transition
from incidents import services as incidents
from incidents.events import publish
from incidents.models import EventKind, Incident, Severity, Status
from reliability_studio.telemetry.errors import TelemetryError
from reliability_studio.telemetry.prometheus import PrometheusClient

from . import promql, windows
from .openslo import OpenSLOError, flatten_validation, parse_yaml
from .selectors import incident_slos
from .models import SLO, IncidentBudgetImpact, SLIKind, SLOSnapshot, SLOStatus

log = logging.getLogger(__name__)

STATE_FIELDS = ["status", "sli", "good_events", "total_events", "budget_remaining", "burn_rates", "alert_rows",
                "forecast_seconds", "stale", "last_error", "computed_at", "attempted_at"]


def alert_fingerprint(slo_id: int) -> str:
    return f"slo:{slo_id}"


# --- definitions ------------------------------------------------------------------------------

def check_slo_source(slo: SLO) -> None:
    """Ask Prometheus whether the SLO's queries parse; ValidationError names the field at fault."""
    client = PrometheusClient.shared()
    fields = {"good": "good_query", "total": "total_query"} if slo.sli_kind == SLIKind.CUSTOM else {}
    for part, query in promql.count_queries(slo, slo.window).items():
        target = fields.get(part, "selector")
        try:
            client.validate(query)
        except TelemetryError as exc:
            raise ValidationError({target: f"Prometheus refused the {part} query {query!r}: {exc}"}) from None


def validate_slo(slo: SLO, *, check_source: bool = True) -> None:
    """Field checks (objective, window, SLI), then the queries against Prometheus."""
    if not slo.slug and slo.service_id and slo.name:
        slo.slug = slo.generated_slug()
    slo.full_clean()
    if check_source:
        check_slo_source(slo)


def save_slo(*, slo: SLO, check_source: bool = True) -> SLO:
    """Validate and save a definition; a changed definition is recomputed by the next cycle."""
    validate_slo(slo, check_source=check_source)
    with transaction.atomic():
        slo.save()
        publish("slo.updated", {"slos": [slo.pk], "definition": True})
    return slo


def severity_policy(slo: SLO) -> dict[str, str]:
    """The SLO's error-budget policy: alert row → incident severity (its own, else the setting)."""
    policy = windows.parse_policy(settings.SLO_SEVERITY_POLICY)
    return policy | windows.parse_policy(slo.severity_policy or {})


# --- the cycle --------------------------------------------------------------------------------

@dataclass
class CycleStats:
    slos: int = 0
    queries: int = 0
    failed: int = 0
    seconds: float = 0.0
    alerts_changed: int = 0
    errors: list[str] = field(default_factory=list)

    @property
    def queries_per_slo(self) -> float:
        return self.queries / self.slos if self.slos else 0.0


def cycle_windows(window_days: set[int]) -> list[str]:
    """The burn windows plus each period in use (deduplicated)."""
    found = list(windows.BURN_WINDOWS)
    for days in sorted(window_days):
        if f"{days}d" not in found:
            found.append(f"{days}d")
    return found


def read_counts(slos: list[SLO], now: datetime, *, batch: bool = True,
                stats: CycleStats | None = None) -> tuple[dict[int, dict[str, promql.Counts]], dict[int, str]]:
    """Event counts per SLO and window at `now`; and the error of every SLO whose source failed."""
    stats = stats or CycleStats()
    client = PrometheusClient.shared()
    counts: dict[int, dict[str, promql.Counts]] = {slo.pk: {} for slo in slos}
    failed: dict[int, str] = {}
    for plan in promql.plan_batches(slos, batch=batch):
        needed = cycle_windows({slo.window_days for slo in plan.slos})
        own = {slo.window for slo in plan.slos}
        for window in needed:
            if window not in windows.BURN_WINDOWS and window not in own:
                continue
            try:
                stats.queries += 1
                result = client.query(plan.query_for(window), time=now)
            except TelemetryError as exc:
                for slo in plan.slos:
                    failed[slo.pk] = str(exc)
                break
            for slo_id, value in plan.counts(result.samples, window).items():
                counts[slo_id][window] = value
    return counts, failed


def recompute_slos(*, slos: list[SLO] | None = None, now: datetime | None = None, batch: bool = True,
                   alerts: bool = True, snapshots: bool = True) -> CycleStats:
    """Recompute every enabled SLO (or `slos`) at `now` and feed the burn alerts to detection."""
    started = time.perf_counter()
    now = now or timezone.now()
    if slos is None:
        slos = list(SLO.objects.enabled().select_related("service"))
    stats = CycleStats(slos=len(slos))
    if not slos:
        return stats
    counts, failed = read_counts(slos, now, batch=batch, stats=stats)
    due_snapshot = _snapshot_due(slos, now) if snapshots else set()
    new_snapshots, changed = [], []
    for slo in slos:
        before = (slo.status, slo.stale, slo.alert_rows)
        slo.attempted_at = now
        if slo.pk in failed:
            stats.failed += 1
            slo.stale, slo.last_error = True, failed[slo.pk][:2000]
        else:
            apply_counts(slo, counts[slo.pk], now)
            if slo.pk in due_snapshot:
                new_snapshots.append(SLOSnapshot(slo=slo, at=now, status=slo.status, sli=slo.sli,
                                                 good_events=slo.good_events, total_events=slo.total_events,
                                                 budget_remaining=slo.budget_remaining, burn_rates=slo.burn_rates))
        if (slo.status, slo.stale, slo.alert_rows) != before or slo.pk in due_snapshot:
            changed.append(slo.pk)
    with transaction.atomic():
        write_state(slos)
        SLOSnapshot.objects.bulk_create(new_snapshots, batch_size=1000)
        if changed or failed:
            publish("slo.updated", {"slos": changed[:200], "changed": len(changed), "stale": len(failed),
                                    "computed_at": now})
    if alerts:
        existing = dict(Alert.objects.filter(fingerprint__in=[alert_fingerprint(s.pk) for s in slos])
                        .values_list("fingerprint", "state"))
        for slo in slos:
            if slo.pk in failed:
                continue  # unknown: neither opens nor closes anything
            if apply_burn_alert(slo=slo, now=now, existing=existing.get(alert_fingerprint(slo.pk))):
                stats.alerts_changed += 1
    stats.seconds = time.perf_counter() - started
    return stats


JSON_FIELDS = {"burn_rates", "alert_rows"}


def write_state(slos: list[SLO]) -> None:
    """Write every SLO's computed state. One parameterised UPDATE per row, sent as one pipelined
    batch: Django's bulk_update builds a CASE expression per field and row, which took 9 s for
    1,000 SLOs (bench/slo.py); this takes a fraction of a second."""
    table = SLO._meta.db_table
    sets = ", ".join(f"{f} = %s::jsonb" if f in JSON_FIELDS else f"{f} = %s" for f in STATE_FIELDS)
    rows = [[json.dumps(getattr(slo, f)) if f in JSON_FIELDS else getattr(slo, f) for f in STATE_FIELDS] + [slo.pk]
            for slo in slos]
    with connection.cursor() as cursor:
        cursor.executemany(f"UPDATE {table} SET {sets}, updated_at = now() WHERE id = %s", rows)


def _snapshot_due(slos: list[SLO], now: datetime) -> set[int]:
    every = timedelta(seconds=settings.SLO_SNAPSHOT_SECONDS)
    recent = set(SLOSnapshot.objects.filter(slo__in=slos, at__gt=now - every).values_list("slo_id", flat=True))
    return {slo.pk for slo in slos} - recent


def apply_counts(slo: SLO, counts: dict[str, promql.Counts], now: datetime) -> None:
    """Set the SLO's computed state from its event counts per window (pure, no I/O)."""
    objective = slo.objective_ratio
    slo.stale, slo.last_error, slo.computed_at = False, "", now
    slo.burn_rates = {
        window: (round(windows.burn_rate(objective=objective, bad=c.bad, total=c.total), 6) if (c := counts.get(window)) else None)
        for window in windows.BURN_WINDOWS
    }
    period = counts.get(slo.window)
    if period is None:
        slo.status, slo.sli, slo.good_events, slo.total_events = SLOStatus.NO_DATA, None, None, None
        slo.budget_remaining, slo.forecast_seconds, slo.alert_rows = None, None, []
        return
    budget = windows.compute_error_budget(objective=objective, window_seconds=slo.window_seconds,
                                          bad=period.bad, total=period.total)
    slo.sli = budget.sli
    slo.good_events, slo.total_events = period.total - min(period.bad, period.total), period.total
    slo.budget_remaining = budget.remaining
    slo.forecast_seconds = windows.forecast_seconds(remaining=budget.remaining,
                                                    burn=slo.burn_rates.get(windows.FORECAST_WINDOW),
                                                    window_seconds=slo.window_seconds)
    rows = windows.firing_rows(slo.burn_rates, slo.window_days)
    slo.alert_rows = [row.name for row in rows]
    slo.status = status_for(budget.remaining, rows)


def status_for(remaining: float, rows) -> str:
    """exhausted (no budget left) > critical (a page row fires, or little budget left) > warning
    (a ticket row fires, or the budget runs low) > healthy."""
    if remaining <= 0:
        return SLOStatus.EXHAUSTED
    severities = {row.severity for row in rows}
    if "page" in severities or remaining < settings.SLO_CRITICAL_REMAINING:
        return SLOStatus.CRITICAL
    if "ticket" in severities or remaining < settings.SLO_WARNING_REMAINING:
        return SLOStatus.WARNING
    return SLOStatus.HEALTHY


# --- burn alerts → detection ------------------------------------------------------------------

def _alert_detail(slo: SLO, rows) -> dict:
    thresholds = slo.burn_thresholds()
    return {"slo_id": slo.pk, "slo": slo.slug, "rows": [r.name for r in rows],
            "thresholds": {r.name: round(thresholds[r.name], 4) for r in rows},
            "burn_rates": slo.burn_rates, "budget_remaining": slo.budget_remaining}


def _burn_value(slo: SLO, rows) -> float | None:
    """The burn the alert reports: the fastest long window among the firing rows (else 1h)."""
    if rows:
        return max(slo.burn_rates[row.long] for row in rows)
    return slo.burn_rates.get("1h")


def apply_burn_alert(*, slo: SLO, now: datetime, existing: str | None = None) -> bool:
    """Move the SLO's burn alert: firing while any row holds, resolved once none has held for
    SLO_ALERT_RECOVERY_HOLD_SECONDS. No data leaves it as it is. Returns whether it changed."""
    if slo.status == SLOStatus.NO_DATA:
        return False
    rows = [row for row in windows.ALERT_ROWS if row.name in slo.alert_rows]
    active = bool(rows)
    if not active and existing in (None, AlertState.INACTIVE, AlertState.RESOLVED):
        return False
    policy = severity_policy(slo)
    severity = windows.severity_for(rows, policy) or Severity.LOW
    kind = "page" if any(r.severity == "page" for r in rows) else "ticket"
    burn = _burn_value(slo, rows)
    with transaction.atomic():
        alert, _ = Alert.objects.get_or_create(
            fingerprint=alert_fingerprint(slo.pk),
            defaults={"name": f"SLO burn: {slo.name}", "service": slo.service, "severity": severity,
                      "labels": {"slo": slo.slug, "slo_id": str(slo.pk), "service": slo.service.slug,
                                 "alertname": "SLOBurnRate"}},
        )
        alert = Alert.objects.select_for_update().get(pk=alert.pk)
        previous, previous_severity = alert.state, alert.severity
        if active:
            alert.last_active_at, alert.value = now, burn
            alert.annotations = {
                "summary": f"{slo.name} ({slo.service.slug}) is burning its error budget at {burn:.1f}× "
                           f"({kind}: {', '.join(f'{r.long} & {r.short}' for r in rows)} above "
                           f"{', '.join(f'{slo.burn_thresholds()[r.name]:.3g}×' for r in rows)}); "
                           f"{(slo.budget_remaining or 0) * 100:.1f} % of the {slo.window} budget left",
                "slo": slo.slug, "severity_row": rows[0].name,
            }
            alert.severity = severity
            if alert.state != AlertState.FIRING:
                alert.state, alert.active_since, alert.firing_since, alert.resolved_at = AlertState.FIRING, now, now, None
        elif alert.state == AlertState.FIRING:
            hold = timedelta(seconds=settings.SLO_ALERT_RECOVERY_HOLD_SECONDS)
            alert.value = burn
            if alert.last_active_at is None or now - alert.last_active_at >= hold:
                alert.state, alert.resolved_at = AlertState.RESOLVED, now
        alert.save()
        detail = _alert_detail(slo, rows)
        if alert.state != previous:
            on_alert_transition(alert, previous, now, event_kind=EventKind.SLO_BURN, detail=detail)
            return True
        if active and alert.severity != previous_severity and alert.incident_id:
            follow_burn_severity(alert=alert, burn=burn, rows=rows)
    return False


def follow_burn_severity(*, alert: Alert, burn: float | None, rows) -> None:
    """The error-budget policy sets the incident's severity while the burn lasts: up with a faster
    burn; down only when every firing alert of the incident is an SLO burn alert (a rule's
    critical alert is never downgraded by a slower burn)."""
    incident = Incident.objects.filter(pk=alert.incident_id).exclude(status=Status.RESOLVED).first()
    if incident is None:
        return
    firing = list(incident.alerts.filter(state=AlertState.FIRING).values_list("fingerprint", "severity"))
    if firing and all(fp.startswith("slo:") for fp, _ in firing):
        target = max((sev for _, sev in firing), key=Severity.rank)
    else:
        target = max([incident.severity, alert.severity], key=Severity.rank)
    if target == incident.severity:
        return
    incidents.update_incident(incident=incident, actor="slos", severity=target)
    incidents.append_timeline_event(
        incident=incident, kind=EventKind.SLO_BURN, actor="slos",
        message=f"Error-budget policy: {alert.name} burns at {burn or 0:.1f}× ({', '.join(r.name for r in rows)}) "
                f"→ severity {target}",
        data={"alert": alert.pk, "burn_rate": burn, "rows": [r.name for r in rows], "severity": target},
    )


# --- budget consumed by an incident -----------------------------------------------------------

@dataclass(frozen=True)
class Consumption:
    """Budget one SLO lost over [start, end]: fraction of the window's budget, and as minutes of
    full outage. `bad`/`total` are events; None everywhere = no data."""

    start: datetime
    end: datetime
    bad: float | None
    total: float | None
    consumed: float | None
    consumed_minutes: float | None


def budget_consumed(slo: SLO, start: datetime, end: datetime) -> Consumption:
    """The error budget `slo` consumed between `start` and `end`.

    consumed = burn rate over [start, end] × (end − start) / window
             = (bad / total) / (1 − objective) × duration / window,
    i.e. the interval's error ratio times its length, in units of the window's budget. Raises
    TelemetryError when Prometheus fails.
    """
    duration = max(1.0, (end - start).total_seconds())
    result = PrometheusClient.shared().query(promql.interval_query(slo, int(round(duration))), time=end)
    plan = promql.Batch([slo], None, (), {}, True)
    counts = plan.counts(result.samples, "").get(slo.pk)
    if counts is None:
        return Consumption(start, end, None, None, None, None)
    burn = windows.burn_rate(objective=slo.objective_ratio, bad=counts.bad, total=counts.total)
    consumed = burn * duration / slo.window_seconds
    return Consumption(start, end, counts.bad, counts.total, consumed, consumed * slo.budget_minutes)


def record_incident_impacts(*, incident: Incident, now: datetime | None = None) -> list[IncidentBudgetImpact]:
    """Store the budget each affected SLO consumed from the incident's start to its resolution
    (final) or to now (live). A failing Prometheus keeps the last value and records the error."""
    now = now or timezone.now()
    final = incident.status == Status.RESOLVED and incident.resolved_at is not None
    end = incident.resolved_at if final else now
    impacts = []
    for slo in incident_slos(incident):
        try:
            used = budget_consumed(slo, incident.started_at, end)
            values = {"bad_events": used.bad, "total_events": used.total, "consumed": used.consumed,
                      "consumed_minutes": used.consumed_minutes, "error": ""}
        except TelemetryError as exc:
            values = {"error": str(exc)[:2000]}
        impact, _ = IncidentBudgetImpact.objects.update_or_create(
            incident=incident, slo=slo,
            defaults={"start": incident.started_at, "end": end, "final": final and not values.get("error"), **values},
        )
        impacts.append(impact)
    if impacts:
        publish("slo.updated", {"incident": incident.pk, "impacts": len(impacts)}, incident_id=incident.pk)
    return impacts


def refresh_open_incident_impacts(*, now: datetime | None = None) -> int:
    """Live impact of every unresolved incident on a service with an SLO (run by the cycle)."""
    now = now or timezone.now()
    with_slos = SLO.objects.enabled().values_list("service_id", flat=True)
    open_incidents = Incident.objects.active().filter(affected_services__in=with_slos).distinct()
    count = 0
    for incident in open_incidents:
        record_incident_impacts(incident=incident, now=now)
        count += 1
    return count


def prune_snapshots(*, now: datetime | None = None) -> int:
    """Drop history older than SLO_SNAPSHOT_RETENTION_DAYS."""
    now = now or timezone.now()
    cutoff = now - timedelta(days=settings.SLO_SNAPSHOT_RETENTION_DAYS)
    deleted, _ = SLOSnapshot.objects.filter(at__lt=cutoff).delete()
    return deleted


# --- OpenSLO import ---------------------------------------------------------------------------

def import_openslo(*, text: str, check_source: bool = True) -> list[tuple[SLO, bool]]:
    """Create or update (by metadata.name) the SLOs of an OpenSLO v1 YAML text; all or nothing.

    Raises ValidationError with one message naming the document and the fields at fault."""
    try:
        slos = parse_yaml(text)
    except OpenSLOError as exc:
        raise ValidationError({"document": str(exc)}) from None
    results = []
    for index, slo in enumerate(slos):
        try:
            validate_slo(slo, check_source=check_source)
        except ValidationError as exc:
            where = f"{slo.slug or 'document ' + str(index + 1)}: "
            raise ValidationError({"document": where + flatten_validation(exc)}) from None
    with transaction.atomic():
        for slo in slos:
            created = slo.pk is None
            slo.save()
            results.append((slo, created))
        publish("slo.updated", {"slos": [s.pk for s, _ in results], "definition": True})
    return results
