"""The SLO panel of the incident page: each affected SLO's budget and what this incident consumed.

Registered in the incidents region registry (incidents/panels.py) from SlosConfig.ready(); it
replaces the incidents' empty-state placeholder of the same name and refreshes on `slo.updated`.
"""
from __future__ import annotations

from incidents import panels

from . import selectors

REGION = "slo-impact"
TEMPLATE = "slos/_incident_slo_impact.html"


def incident_slo_impact(request, incident) -> dict:
    """Context of the region: affected SLOs with their current state and stored impact."""
    return {"incident": incident, "slo_impacts": selectors.incident_impact_rows(incident)}


def register() -> None:
    panels.register_region(REGION, TEMPLATE, incident_slo_impact, column=panels.SIDE, order=20)
