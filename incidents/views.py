"""Control room pages for incidents (server-rendered; live updates arrive over /ws/incidents/)."""
from django.shortcuts import get_object_or_404, render

from reliability_studio.access import Role, role_required

from . import selectors
from .models import Incident


@role_required(Role.VIEWER)
def incident_list(request):
    return render(
        request,
        "incidents/list.html",
        {"active": selectors.active_incidents()[:200], "recent": selectors.resolved_recently(10)},
    )


@role_required(Role.VIEWER)
def incident_detail(request, pk: int):
    incident = get_object_or_404(Incident.objects.select_related("primary_service", "commander"), pk=pk)
    return render(
        request,
        "incidents/detail.html",
        {
            "incident": incident,
            "timeline": incident.timeline.all(),
            "tasks": incident.tasks.select_related("owner"),
            "blast_radius": selectors.incident_blast_radius(incident),
        },
    )
