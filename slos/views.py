"""SLO pages: the list (status and budget bars), one SLO (burndown, burn rates, forecast, the
incidents that consumed its budget) and the admins' form. Same pattern as the incident pages:
each page is made of regions fetched again when `slo.updated` arrives (static/js/live.js)."""
from __future__ import annotations

from typing import Callable

from django.http import Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_http_methods

from incidents.stream import live_page
from reliability_studio.access import Role, role_required

from . import selectors, services
from .forms import SLOForm
from .models import SLO


def _list(request, slo=None) -> dict:
    return {"rows": [selectors.slo_summary(slo) for slo in selectors.slo_list()]}


def _summary(request, slo: SLO) -> dict:
    return {"slo": slo, "summary": selectors.slo_summary(slo)}


def _burn(request, slo: SLO) -> dict:
    return {"slo": slo, "burn_windows": selectors.burn_windows(slo), "burn_rows": selectors.burn_table(slo)}


def _burndown(request, slo: SLO) -> dict:
    return {"slo": slo, "burndown": selectors.burndown_chart(slo)}


def _incidents(request, slo: SLO) -> dict:
    return {"slo": slo, "impacts": selectors.incidents_that_consumed(slo)[:100]}


DETAIL_REGIONS: dict[str, tuple[str, Callable[..., dict]]] = {
    "summary": ("slos/_summary.html", _summary),
    "burn": ("slos/_burn.html", _burn),
    "burndown": ("slos/_burndown.html", _burndown),
    "incidents": ("slos/_incidents.html", _incidents),
}


def _slo(pk: int) -> SLO:
    return get_object_or_404(SLO.objects.select_related("service"), pk=pk)


@require_GET
@role_required(Role.VIEWER)
@live_page
def slo_list(request):
    return render(request, "slos/list.html", _list(request))


@require_GET
@role_required(Role.VIEWER)
def slo_list_region(request):
    return render(request, "slos/_list.html", _list(request))


@require_GET
@role_required(Role.VIEWER)
@live_page
def slo_detail(request, pk: int):
    slo = _slo(pk)
    context = {"slo": slo}
    for _template, build in DETAIL_REGIONS.values():
        context.update(build(request, slo))
    return render(request, "slos/detail.html", context)


@require_GET
@role_required(Role.VIEWER)
def slo_region(request, pk: int, region: str):
    if region not in DETAIL_REGIONS:
        raise Http404("no such region")
    template, build = DETAIL_REGIONS[region]
    return render(request, template, build(request, _slo(pk)))


@require_http_methods(["GET", "POST"])
@role_required(Role.ADMIN)
def slo_edit(request, pk: int | None = None):
    """Create or edit an SLO; errors come back on the form (422), a valid one is saved and shown."""
    instance = _slo(pk) if pk is not None else None
    form = SLOForm(request.POST or None, instance=instance)
    if request.method == "POST":
        if form.is_valid():
            slo = services.save_slo(slo=form.instance, check_source=False)  # the form already asked Prometheus
            return redirect("slos:detail", slo.pk)
        return render(request, "slos/form.html", {"form": form, "slo": instance}, status=422)
    return render(request, "slos/form.html", {"form": form, "slo": instance})
