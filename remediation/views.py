"""Control-room pages of remediation: the buttons of the incident page's actions region (request,
approve, cancel, refresh the dry run) and the audit log page. Each button checks the role, calls
one write in remediation.services and answers htmx with the fresh region (a refused write: 409
with the message inline), or a plain form with a redirect back to the incident."""
from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_POST

from incidents.errors import DomainError
from incidents.models import Incident
from reliability_studio.access import Role, role_required

from . import panels, services
from .models import Action, AuditEvent, AuditRecord

VERBS = {
    "request": lambda action, user: services.request_action(action=action, user=user),
    "approve": lambda action, user: services.approve_action(action=action, user=user),
    "cancel": lambda action, user: services.cancel_action(action=action, user=user),
    "preview": lambda action, user: services.refresh_dry_run(action=action, user=user),
}


def _is_htmx(request) -> bool:
    return request.headers.get("HX-Request") == "true" and request.headers.get("HX-History-Restore-Request") != "true"


def _region(request, incident_id: int, *, error: str = "", status: int = 200):
    incident = get_object_or_404(Incident.objects.select_related("primary_service"), pk=incident_id)
    if not _is_htmx(request):
        if error:
            messages.error(request, error)
        return redirect("incidents:detail", pk=incident.pk)
    context = panels.incident_actions(request, incident) | {"error": error}
    response = render(request, panels.TEMPLATE, context, status=status if error else 200)
    if not error:
        response["HX-Trigger"] = "rs-timeline-appended"  # the timeline has the new entry
    return response


@require_POST
@role_required(Role.RESPONDER)
def action_verb(request, pk: int, verb: str):
    if verb not in VERBS:
        raise Http404("no such operation")
    action = get_object_or_404(Action, pk=pk)
    try:
        VERBS[verb](action, request.user)
    except DomainError as exc:
        return _region(request, action.incident_id, error=str(exc), status=getattr(exc, "http_status", 409))
    except ValidationError as exc:
        return _region(request, action.incident_id, error=" ".join(exc.messages), status=422)
    return _region(request, action.incident_id)


@require_GET
@role_required(Role.VIEWER)
def audit_log(request):
    """Every audit record, newest first; ?incident=, ?event=, ?actor= filter it."""
    records = AuditRecord.objects.all()
    filters = {}
    for name, field in (("incident", "incident_id"), ("event", "event"), ("actor", "actor")):
        value = request.GET.get(name, "").strip()
        if value:
            if name == "incident" and not value.isdigit():
                continue
            records = records.filter(**{field: value})
            filters[name] = value
    page = Paginator(records, 100).get_page(request.GET.get("page"))
    return render(request, "remediation/audit.html", {"page": page, "filters": filters, "events": AuditEvent.choices})
