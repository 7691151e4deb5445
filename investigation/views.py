"""Control-room actions of the investigation: re-run, confirm/reject a hypothesis, edit and export
the review. Each view checks the role, validates a form, calls one write (investigation.services or
investigation.review) and answers htmx with the fresh region (errors inline: 422 for a bad form,
409 for a refused write) or, for a plain form, a redirect back."""
from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_POST

from incidents import panels
from incidents.errors import DomainError
from incidents.models import Incident
from reliability_studio.access import Role, role_required

from . import review as reviews
from . import services
from .forms import DecisionForm, ReviewSectionForm
from .models import Hypothesis, Review, Trigger


def _is_htmx(request) -> bool:
    return request.headers.get("HX-Request") == "true" and request.headers.get("HX-History-Restore-Request") != "true"


def _error_text(exc: Exception) -> str:
    return " ".join(exc.messages) if isinstance(exc, ValidationError) else str(exc)


def _incident(pk: int) -> Incident:
    return get_object_or_404(Incident.objects.select_related("primary_service", "commander"), pk=pk)


def _region_response(request, incident: Incident, name: str, *, error: str = "", status: int = 200,
                     trigger: str = "", back: str = "incidents:detail"):
    """The fresh region for htmx (the error inline); a plain form post gets a redirect back."""
    if not _is_htmx(request):
        if error:
            messages.error(request, error)
        return redirect(back, pk=incident.pk)
    region = panels.region(name)
    context = region.builder(request, _incident(incident.pk)) | {"error": error}
    response = render(request, region.template, context, status=status if error else 200)
    if trigger and not error:
        # The regions that depend on this write refresh at once, even if this browser's socket is down.
        response["HX-Trigger"] = trigger
    return response


@require_POST
@role_required(Role.RESPONDER)
def rerun_investigation(request, pk: int):
    incident = _incident(pk)
    try:
        services.start_investigation(incident=incident, trigger=Trigger.MANUAL, user=request.user)
    except (DomainError, ValidationError) as exc:
        return _region_response(request, incident, "investigation", error=_error_text(exc), status=409)
    return _region_response(request, incident, "investigation", trigger="rs-investigation-progress")


@require_POST
@role_required(Role.RESPONDER)
def decide_hypothesis(request, pk: int, hypothesis_id: int):
    hypothesis = get_object_or_404(Hypothesis, pk=hypothesis_id, incident_id=pk)
    incident = _incident(pk)
    form = DecisionForm(request.POST)
    if not form.is_valid():
        return _region_response(request, incident, "hypotheses", status=422,
                                error="Choose confirm or reject (a note has at most 1000 characters).")
    try:
        services.decide_hypothesis(hypothesis=hypothesis, status=form.cleaned_data["status"], user=request.user,
                                   note=form.cleaned_data["note"])
    except (DomainError, ValidationError) as exc:
        return _region_response(request, incident, "hypotheses", error=_error_text(exc), status=409)
    # The summary (root cause), the evidence tab choice and the timeline follow the decision.
    return _region_response(request, incident, "hypotheses",
                            trigger="rs-incident-updated, rs-timeline-appended")


# --- review ----------------------------------------------------------------------------------------

def _review(incident: Incident) -> Review:
    return reviews.get_or_generate_review(incident)


@require_POST
@role_required(Role.RESPONDER)
def edit_review_section(request, pk: int):
    """One section's text (or, with `restore`, back to the generated text). Answers htmx with the
    section; a bad form is a 422 with the message in the section."""
    incident = _incident(pk)
    review = _review(incident)
    form = ReviewSectionForm(request.POST)
    name = request.POST.get("section", "")
    if not form.is_valid():
        error = "Unknown section." if "section" in form.errors else \
            f"A section has at most {reviews.MAX_SECTION_CHARS} characters."
        return _section_response(request, incident, review, name, error=error)
    name = form.cleaned_data["section"]
    text = None if form.cleaned_data["restore"] else form.cleaned_data["text"]
    try:
        review = reviews.edit_review(review=review, sections={name: text}, user=request.user)
    except ValidationError as exc:
        return _section_response(request, incident, review, name, error=_error_text(exc))
    return _section_response(request, incident, review, name)


def _section_response(request, incident: Incident, review: Review, name: str, *, error: str = ""):
    if not _is_htmx(request):
        if error:
            messages.error(request, error)
        return redirect("incidents:review", pk=incident.pk)
    views = {v["name"]: v for v in reviews.section_views(review)}
    if name not in views:
        return render(request, "incidents/_form_error.html", {"error": error or "Unknown section."}, status=422)
    return render(request, "investigation/_review_section.html",
                  {"incident": incident, "review": review, "section": views[name], "error": error},
                  status=422 if error else 200)


@require_POST
@role_required(Role.RESPONDER)
def regenerate_review(request, pk: int):
    incident = _incident(pk)
    reviews.generate_review(incident)
    messages.success(request, "Review regenerated from the stored data; edited sections were kept.")
    return redirect("incidents:review", pk=incident.pk)


@require_GET
@role_required(Role.VIEWER)
def review_markdown(request, pk: int):
    incident = _incident(pk)
    response = HttpResponse(reviews.review_markdown(_review(incident)), content_type="text/markdown; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{incident.key}-review.md"'
    return response
