"""Control room pages for incidents and services (server-rendered, HTMX partials).

Pages are split into regions, each a partial template that can be fetched on its own
(`incident_region`). Live events arrive over /ws/incidents/ and only tell the page *which* region
to fetch again (static/js/live.js), so the HTML is always rendered here and never in the browser.
Writes go through incidents.services; roles through reliability_studio.access. The regions live in
the registry `incidents.panels`: this module registers the incidents' own (and placeholders for the
panels other apps fill), and apps built on incidents replace them from their AppConfig.ready().
"""
from __future__ import annotations

import hashlib
import time

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.db.models import prefetch_related_objects
from django.http import Http404, HttpResponse, HttpResponseNotModified
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.cache import patch_vary_headers
from django.utils.http import parse_etags
from django.views.decorators.http import require_GET, require_POST

from reliability_studio.access import Role, role_of, role_required

from . import panels, selectors, services
from .errors import DomainError
from .forms import ACTIVE, CommentForm, IncidentFilterForm, TaskForm
from .graph import layout_blast_radius
from .models import Incident, Status, Task
from .stream import live_page

LIST_LIMIT = 200


def _is_htmx(request) -> bool:
    # A history-restore request wants the whole page back, not a fragment.
    return request.headers.get("HX-Request") == "true" and request.headers.get("HX-History-Restore-Request") != "true"


def _error_text(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        return " ".join(exc.messages)
    return str(exc)


# --- conditional partials ---------------------------------------------------------------------
# The partials htmx re-fetches after every live event carry a weak ETag and `Cache-Control: private,
# no-cache`: the browser keeps the body and revalidates each re-fetch with If-None-Match, and a
# 304 (after one version statement, see incidents.selectors) turns back into the kept body, so
# htmx swaps the same HTML without the server rendering it. The tag covers what the partial shows
# (the version), the query string, the role (action buttons), the user and the CSRF secret (the
# forms in a kept body must still post after a new sign-in). Bump PAGE_ETAG_SCHEMA whenever a
# partial's template changes what it shows.
PAGE_ETAG_SCHEMA = "1"


def _page_etag(request, *parts) -> str:
    query = "&".join(sorted(request.META.get("QUERY_STRING", "").split("&")))
    raw = "|".join(map(str, (PAGE_ETAG_SCHEMA, request.user.pk, int(role_of(request.user)),
                             request.META.get("CSRF_COOKIE", ""), query, *parts)))
    return 'W/"' + hashlib.blake2b(raw.encode(), digest_size=12).hexdigest() + '"'


def _not_modified(request, etag: str) -> HttpResponse | None:
    """304 when If-None-Match names `etag` (weak comparison, as RFC 9110 asks for GET)."""
    header = request.headers.get("If-None-Match")
    if not header:
        return None
    offered = {tag.removeprefix("W/") for tag in parse_etags(header)}
    if "*" in offered or etag.removeprefix("W/") in offered:
        return _tagged(HttpResponseNotModified(), etag)
    return None


def _tagged(response: HttpResponse, etag: str) -> HttpResponse:
    response["ETag"] = etag
    response["Cache-Control"] = "private, no-cache"  # kept by the browser, revalidated every time
    return response


# --- incident list -------------------------------------------------------------------------------

@require_GET
@role_required(Role.VIEWER)
@live_page
def incident_list(request):
    etag = None
    if _is_htmx(request):
        # Any incident, timeline entry or service (the filters' service choices, slugs) anywhere:
        # a superset of what any filter shows, in one statement. The minute: "resolved 5 minutes ago".
        etag = _page_etag(request, "list", _minute(), *selectors.incident_list_version(Incident.objects.all()))
        if (response := _not_modified(request, etag)) is not None:
            return _vary_on_htmx(response)
    form = IncidentFilterForm(request.GET)
    filters = form.filters()
    context = {
        "form": form,
        "incidents": selectors.control_room_incidents(**filters)[:LIST_LIMIT],
        "show_recent": filters["status"] == ACTIVE,
        "filtered": bool(filters["severity"] or filters["service"]) or filters["status"] != ACTIVE,
        "recent": selectors.resolved_recently(10) if filters["status"] == ACTIVE else (),
    }
    if etag is None:
        return _vary_on_htmx(render(request, "incidents/list.html", context))
    return _vary_on_htmx(_tagged(render(request, "incidents/_incident_table.html", context), etag))


def _minute() -> int:
    return int(time.time() // 60)


def _vary_on_htmx(response: HttpResponse) -> HttpResponse:
    # One URL serves the page and its partial: the browser must keep them apart.
    patch_vary_headers(response, ("HX-Request", "HX-History-Restore-Request"))
    return response


# --- incident page -------------------------------------------------------------------------------

def _header(request, incident: Incident) -> dict:
    return {"incident": incident, "statuses": Status}


def _summary(request, incident: Incident) -> dict:
    return {"incident": incident}


def _blast_radius(request, incident: Incident) -> dict:
    prefetch_related_objects([incident], "affected_services")  # read here and by the selector: once
    affected = {s.pk for s in incident.affected_services.all()}
    if incident.primary_service_id:
        affected.add(incident.primary_service_id)
    radius = selectors.incident_blast_radius(incident)
    return {
        "incident": incident,
        "graph": layout_blast_radius(affected, {s.pk: d for s, d in radius}),
        "blast_radius": radius,
        "affected_count": len(affected),
    }


def _timeline(request, incident: Incident) -> dict:
    return {"incident": incident, "timeline": incident.timeline.order_by("-occurred_at", "-id")}


def _tasks(request, incident: Incident) -> dict:
    return {"incident": incident, "tasks": incident.tasks.select_related("owner")}


def _panel(request, incident: Incident) -> dict:
    # SLO impact, evidence, hypotheses and actions belong to other apps (slos, investigation,
    # remediation), which replace these placeholders with their own regions; without them the
    # panels say so honestly (see the templates) and refresh on the apps' events.
    return {"incident": incident}


# The incidents' regions, and placeholders for the panels other apps fill (investigation: summary,
# evidence, hypotheses; SLOs; remediation). `register_default` never replaces an app's region, so
# the order in which modules are imported does not matter.
for _name, _template, _build, _column, _order in (
    ("header", "incidents/_header.html", _header, panels.FIXED, 0),
    ("summary", "incidents/_summary.html", _summary, panels.MAIN, 10),
    ("hypotheses", "incidents/_hypotheses.html", _panel, panels.MAIN, 30),
    ("evidence", "incidents/_evidence.html", _panel, panels.MAIN, 40),
    ("blast-radius", "incidents/_blast_radius.html", _blast_radius, panels.MAIN, 50),
    ("slo-impact", "incidents/_slo_impact.html", _panel, panels.SIDE, 20),
    ("actions", "incidents/_actions.html", _panel, panels.SIDE, 30),
    ("timeline", "incidents/_timeline.html", _timeline, panels.FIXED, 90),
    ("tasks", "incidents/_tasks.html", _tasks, panels.FIXED, 80),
):
    panels.register_default(_name, _template, _build, column=_column, order=_order)


# What each of the incidents' own regions shows depends on (incidents.selectors.incident_page_version).
REGION_VERSION_PARTS = {
    _header: ("incident", "services"),
    _summary: ("incident",),
    _timeline: ("timeline",),
    _tasks: ("tasks",),
    _blast_radius: ("incident", "timeline", "services", "graph"),
}


def _incident(pk: int) -> Incident:
    return get_object_or_404(Incident.objects.select_related("primary_service", "commander"), pk=pk)


@require_GET
@role_required(Role.VIEWER)
@live_page
def incident_detail(request, pk: int):
    incident = _incident(pk)
    context = panels.build_context(request, incident) | {
        "incident": incident,
        "main_regions": [r.template for r in panels.regions(column=panels.MAIN)],
        "side_regions": [r.template for r in panels.regions(column=panels.SIDE)],
    }
    return render(request, "incidents/detail.html", context)


@require_GET
@role_required(Role.VIEWER)
def incident_region(request, pk: int, region: str):
    found = panels.region(region)
    if found is None:
        raise Http404("no such region")
    # Only the incidents' own regions are tagged: what an app's region shows is the app's to say.
    parts = REGION_VERSION_PARTS.get(found.builder)
    if parts is None:
        return render(request, found.template, found.builder(request, _incident(pk)))
    version = selectors.incident_page_version(pk, parts)
    if version is None:
        raise Http404("no such incident")
    etag = _page_etag(request, "region", region, pk, *version)
    if (response := _not_modified(request, etag)) is not None:
        return response
    return _tagged(render(request, found.template, found.builder(request, _incident(pk))), etag)


# --- post-incident review --------------------------------------------------------------------------

REVIEW_DURATIONS = (
    ("Time to detect", "time_to_detect", "from the start of the problem to its detection"),
    ("Time to acknowledge", "time_to_acknowledge", "from detection to the first acknowledgement"),
    ("Time to mitigate", "time_to_mitigate", "from the start to mitigation"),
    ("Time to resolve", "time_to_resolve", "from the start to resolution"),
)


@require_GET
@role_required(Role.VIEWER)
def incident_review(request, pk: int):
    """A printable review of one incident (meant for resolved ones): durations, the alerts that fed
    it, blast radius, the whole timeline oldest first, tasks, root cause and impact. An app that
    writes the review (investigation) registers its sections as review-page regions; they replace
    the summary, tasks and timeline shown here without one."""
    incident = _incident(pk)
    review_regions = panels.regions(panels.REVIEW_PAGE)
    context = panels.build_context(request, incident, panels.REVIEW_PAGE) | {
        "review_regions": [r.template for r in review_regions],
        "incident": incident,
        "durations": [(label, getattr(incident, name), meaning) for label, name, meaning in REVIEW_DURATIONS],
        "alerts": selectors.incident_review_alerts(incident),
        "affected": sorted({*incident.affected_services.all(), *filter(None, [incident.primary_service])},
                           key=lambda s: s.slug),
        "timeline": incident.timeline.order_by("occurred_at", "id"),
        "tasks": incident.tasks.select_related("owner"),
    }
    context.update(_blast_radius(request, incident))
    return render(request, "incidents/review.html", context)


def _region_response(request, incident: Incident, region: str, *, error: str = "", trigger: str = ""):
    """Answer an htmx write with the fresh region (and the error inline); plain forms get a redirect."""
    if not _is_htmx(request):
        if error:
            messages.error(request, error)
        return redirect("incidents:detail", pk=incident.pk)
    found = panels.region(region)
    context = found.builder(request, _incident(incident.pk)) | {"error": error}
    # 409/422 are swapped too (htmx-config in base.html) so the message appears where the user acted.
    response = render(request, found.template, context, status=409 if error else 200)
    if trigger and not error:
        # Refresh dependent regions at once, even if this browser's WebSocket is down right now.
        response["HX-Trigger"] = trigger
    return response


ACTIONS = {
    "acknowledge": lambda incident, user: services.acknowledge_incident(incident=incident, user=user),
    "mitigate": lambda incident, user: services.transition_incident(incident=incident, to=Status.MITIGATED, user=user),
    "resolve": lambda incident, user: services.transition_incident(incident=incident, to=Status.RESOLVED, user=user),
    "reopen": lambda incident, user: services.transition_incident(incident=incident, to=Status.OPEN, user=user),
    "investigate": lambda incident, user: services.transition_incident(
        incident=incident, to=Status.INVESTIGATING, user=user
    ),
}


@require_POST
@role_required(Role.RESPONDER)
def incident_action(request, pk: int, action: str):
    if action not in ACTIONS:
        raise Http404("no such action")
    incident = _incident(pk)
    try:
        ACTIONS[action](incident, request.user)
    except (DomainError, ValidationError) as exc:
        return _region_response(request, incident, "header", error=_error_text(exc))
    return _region_response(request, incident, "header", trigger="rs-timeline-appended")


def _form_response(request, incident: Incident, *, error: str = "", trigger: str = ""):
    """Answer a comment/task form: the error slot's content (empty on success) and, on success, the
    event that makes the page fetch the region that changed at once, even if this browser's
    WebSocket is down right now. The form itself is outside the live region so typing survives."""
    if not _is_htmx(request):
        if error:
            messages.error(request, error)
        return redirect("incidents:detail", pk=incident.pk)
    response = render(request, "incidents/_form_error.html", {"error": error}, status=422 if error else 200)
    if trigger and not error:
        response["HX-Trigger"] = trigger
    return response


@require_POST
@role_required(Role.RESPONDER)
def add_comment(request, pk: int):
    incident = _incident(pk)
    form = CommentForm(request.POST)
    if not form.is_valid():
        return _form_response(request, incident, error="A comment cannot be empty.")
    try:
        services.add_comment(incident=incident, user=request.user, message=form.cleaned_data["message"])
    except ValidationError as exc:
        return _form_response(request, incident, error=_error_text(exc))
    return _form_response(request, incident, trigger="rs-timeline-appended")


@require_POST
@role_required(Role.RESPONDER)
def add_task(request, pk: int):
    incident = _incident(pk)
    form = TaskForm(request.POST)
    if not form.is_valid():
        return _form_response(request, incident, error="A task needs a title (up to 300 characters).")
    try:
        services.create_task(incident=incident, title=form.cleaned_data["title"], user=request.user)
    except ValidationError as exc:
        return _form_response(request, incident, error=_error_text(exc))
    return _form_response(request, incident, trigger="rs-task-updated")


@require_POST
@role_required(Role.RESPONDER)
def toggle_task(request, pk: int, task_id: int):
    task = get_object_or_404(Task, pk=task_id, incident_id=pk)
    services.update_task(task=task, user=request.user, done=not task.done)
    return _region_response(request, task.incident, "tasks")


# --- services ----------------------------------------------------------------------------------

@require_GET
@role_required(Role.VIEWER)
@live_page
def service_list(request):
    context = {"services": selectors.service_catalog(), "health": selectors.active_incidents_by_service()}
    template = "incidents/_service_table.html" if _is_htmx(request) else "incidents/services.html"
    return render(request, template, context)

