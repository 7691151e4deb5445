"""Reads for the SLO pages, the API and the incident panel."""
from __future__ import annotations

import json

from django.db.models import Q

from . import windows
from .models import SLO, IncidentBudgetImpact, SLOSnapshot


def _pct(value: float | None, digits: int = 3) -> str | None:
    return None if value is None else f"{value * 100:.{digits}g}"


def slo_list():
    return SLO.objects.select_related("service").order_by("service__slug", "name")


def slo_summary(slo: SLO) -> dict:
    """What a list row or a panel shows about one SLO."""
    remaining = slo.budget_remaining
    return {
        "slo": slo,
        "sli_pct": None if slo.sli is None else f"{slo.sli * 100:.4f}".rstrip("0").rstrip("."),
        "remaining_pct": None if remaining is None else f"{remaining * 100:.1f}",
        "remaining_meter": None if remaining is None else max(0.0, min(1.0, remaining)),
        "remaining_minutes": None if remaining is None else remaining * slo.budget_minutes,
        "consumed_minutes": None if remaining is None else (1 - remaining) * slo.budget_minutes,
        "forecast": forecast_text(slo),
        "burn_1h": (slo.burn_rates or {}).get("1h"),
    }


def forecast_text(slo: SLO) -> str:
    if slo.budget_remaining is None:
        return "no data"
    if slo.budget_remaining <= 0:
        return "the budget is exhausted"
    if slo.forecast_seconds is None:
        return "not burning at the current (1 h) rate"
    return f"at the current burn the budget is gone in {windows.format_duration(slo.forecast_seconds)}"


def burn_table(slo: SLO) -> list[dict]:
    """Every burn window with its rate, and the alert rows with their thresholds and verdict."""
    burn = slo.burn_rates or {}
    rows = []
    thresholds = slo.burn_thresholds()
    for row in windows.ALERT_ROWS:
        rows.append({
            "row": row, "threshold": thresholds[row.name],
            "long": burn.get(row.long), "short": burn.get(row.short),
            "firing": row.name in (slo.alert_rows or []),
            # Workbook detection time of this row at 100 % errors (burn = 1 / budget).
            "time_to_fire_full_outage": windows.format_duration(windows.time_to_fire(
                burn=1 / slo.error_budget, threshold=thresholds[row.name], long_window_seconds=windows.seconds(row.long))),
        })
    return rows


def burn_windows(slo: SLO) -> list[tuple[str, float | None]]:
    burn = slo.burn_rates or {}
    return [(w, burn.get(w)) for w in windows.BURN_WINDOWS]


def burndown_chart(slo: SLO, limit: int = 2000) -> str | None:
    """uPlot spec (static/js/charts.js) of the budget remaining over the snapshots, in %."""
    points = list(SLOSnapshot.objects.filter(slo=slo).order_by("-at").values_list("at", "budget_remaining")[:limit])
    points.reverse()
    if len(points) < 2:
        return None
    spec = {
        "title": f"Error budget remaining, {slo.window_days}-day window",
        "unit": "%",
        "x": [at.timestamp() for at, _ in points],
        "series": [{"label": "budget remaining", "values": [None if v is None else round(v * 100, 3) for _, v in points]}],
    }
    return json.dumps(spec)


def incidents_that_consumed(slo: SLO):
    """The incidents that consumed this SLO's budget, newest first."""
    return (IncidentBudgetImpact.objects.filter(slo=slo).select_related("incident")
            .order_by("-start"))


def incident_slos(incident) -> list[SLO]:
    """The SLOs an incident touches: its services' SLOs and any SLO whose burn alert fed it."""
    service_ids = set(incident.affected_services.values_list("pk", flat=True))
    if incident.primary_service_id:
        service_ids.add(incident.primary_service_id)
    slo_ids = {int(fp.split(":", 1)[1]) for fp in incident.alerts.filter(fingerprint__startswith="slo:")
               .values_list("fingerprint", flat=True) if fp.split(":", 1)[1].isdigit()}
    return list(SLO.objects.filter(enabled=True).filter(Q(service_id__in=service_ids) | Q(pk__in=slo_ids))
                .select_related("service").distinct())


def incident_impact_rows(incident) -> list[dict]:
    """Per affected SLO: its current state and what this incident consumed (stored)."""
    stored = {i.slo_id: i for i in IncidentBudgetImpact.objects.filter(incident=incident)}
    slos = {slo.pk: slo for slo in incident_slos(incident)}
    for slo_id in stored:
        if slo_id not in slos:
            slos[slo_id] = SLO.objects.select_related("service").get(pk=slo_id)
    rows = []
    for slo in sorted(slos.values(), key=lambda s: (s.service.slug, s.name)):
        impact = stored.get(slo.pk)
        rows.append(slo_summary(slo) | {
            "impact": impact,
            "consumed_pct": None if impact is None or impact.consumed is None else f"{impact.consumed * 100:.2f}",
        })
    return rows
