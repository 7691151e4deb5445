"""The detection status page: rules, the alerts that are pending or firing, external sources, and
the fire drill for admins.

Same pattern as the incident pages (incidents/views.py): the page is made of regions, each a
partial that can be fetched alone; `detection.updated` events over /ws/incidents/ only tell the
page which regions to fetch again (static/js/live.js). Reads come from detection.selectors; the
only write here is fault injection into the demo workload, through ChaosClient.
"""
from __future__ import annotations

import dataclasses
from typing import Callable

from django.conf import settings
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from incidents.stream import live_page
from reliability_studio.access import Role, has_role, role_required

from . import selectors
from .chaos import ChaosClient, ChaosError
from .forms import FireDrillForm

# The fault state is read while rendering the page: a workload that does not answer must not hold
# the page for the client's full write timeout.
STATUS_TIMEOUT = 2.0


def _is_htmx(request) -> bool:
    return request.headers.get("HX-Request") == "true" and request.headers.get("HX-History-Restore-Request") != "true"


def _rules(request) -> dict:
    return {"rules": selectors.rule_status()}


def _alerts(request) -> dict:
    return {"alerts": selectors.active_alerts()}


def _sources(request) -> dict:
    return {"sources": selectors.external_source_activity(), "external_alerts": selectors.recent_external_alerts()}


# Region name → (template, context builder); the page renders all, live events re-fetch each.
REGIONS: dict[str, tuple[str, Callable[..., dict]]] = {
    "rules": ("detection/_rules.html", _rules),
    "alerts": ("detection/_alerts.html", _alerts),
    "sources": ("detection/_sources.html", _sources),
}


def _fire_drill(*, form: FireDrillForm | None = None, error: str = "", notice: str = "") -> dict:
    """Context of the fire-drill panel: the form and the demo workload's current faults."""
    client = dataclasses.replace(ChaosClient.from_settings(), timeout=STATUS_TIMEOUT)
    try:
        state, unreachable = client.status().get("services", {}), ""
    except ChaosError as exc:
        state, unreachable = None, str(exc)
    return {"drill_form": form or FireDrillForm(), "drill_error": error, "drill_notice": notice,
            "fault_state": state, "fault_state_error": unreachable}


def _page(request, *, status: int = 200, **drill) -> HttpResponse:
    context: dict = {}
    for _template, build in REGIONS.values():
        context.update(build(request))
    if has_role(request.user, Role.ADMIN) and settings.DEMO_ENABLED:  # no fire drill without the demo
        context.update(_fire_drill(**drill))
    return render(request, "detection/status.html", context, status=status)


@require_GET
@role_required(Role.VIEWER)
@live_page
def detection_status(request):
    return _page(request)


@require_GET
@role_required(Role.VIEWER)
def detection_region(request, region: str):
    if region not in REGIONS:
        raise Http404("no such region")
    template, build = REGIONS[region]
    return render(request, template, build(request))


def _drill_response(request, *, form: FireDrillForm | None = None, error: str = "", notice: str = ""):
    """htmx gets the fresh fire-drill panel; a plain form gets the page back (errors inline) or a
    redirect after success. Errors answer 422, which htmx swaps (base.html) so they show in place."""
    status = 422 if error or (form is not None and form.errors) else 200
    if not _is_htmx(request):
        if status == 200:
            return redirect("detection:status")
        return _page(request, status=status, form=form, error=error)
    context = _fire_drill(form=form if status != 200 else None, error=error, notice=notice)
    return render(request, "detection/_fire_drill.html", context, status=status)


@require_POST
@role_required(Role.ADMIN)
def fire_drill(request):
    form = FireDrillForm(request.POST)
    if not form.is_valid():
        return _drill_response(request, form=form)
    fault = form.fault()
    try:
        fault.inject(ChaosClient.from_settings())
    except ChaosError as exc:
        return _drill_response(request, form=form, error=str(exc))
    return _drill_response(request, notice=f"Injected {fault}. Recover when the drill is over.")


@require_POST
@role_required(Role.ADMIN)
def recover_all(request):
    try:
        ChaosClient.from_settings().recover()
    except ChaosError as exc:
        return _drill_response(request, error=str(exc))
    return _drill_response(request, notice="Every fault was cleared.")
