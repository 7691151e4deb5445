"""The one-click acknowledge link: GET shows a confirm page (link scanners acknowledge nothing),
POST acknowledges — as the signed-in responder, or, when NOTIFICATIONS_ACK_ANONYMOUS allows it,
as the recipient the signed token names."""
from __future__ import annotations

from urllib.parse import quote

from django.conf import settings
from django.contrib.auth.views import redirect_to_login
from django.shortcuts import render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods

from incidents.errors import InvalidTransition
from incidents.models import Incident
from reliability_studio.access import Role, has_role

from . import services, signing


@never_cache
@require_http_methods(["GET", "POST"])
def acknowledge(request, token: str):
    try:
        claim = signing.read_ack_token(token)
    except signing.BadAckLink as exc:
        return render(request, "notifications/ack.html", {"outcome": "invalid", "reason": exc.reason}, status=400)
    incident = Incident.objects.select_related("primary_service").filter(pk=claim.incident_id).first()
    if incident is None:
        return render(request, "notifications/ack.html", {"outcome": "invalid", "reason": "invalid"}, status=404)
    as_user = request.user.is_authenticated and has_role(request.user, Role.RESPONDER)
    anonymous = not as_user and settings.NOTIFICATIONS_ACK_ANONYMOUS
    who = request.user.get_username() if as_user else claim.recipient
    context = {"incident": incident, "who": who, "can_ack": as_user or anonymous,
               "login_url": f"{settings.LOGIN_URL}?next={quote(request.get_full_path())}"}
    if request.method == "GET":
        return render(request, "notifications/ack.html", {**context, "outcome": "confirm"})
    if not (as_user or anonymous):
        if not request.user.is_authenticated:
            return redirect_to_login(request.get_full_path())
        return render(request, "notifications/ack.html", {**context, "outcome": "refused",
                                                           "message": "Your role does not allow acknowledging incidents."},
                      status=403)
    try:
        incident = services.acknowledge_from_link(claim=claim, user=request.user if as_user else None)
    except InvalidTransition as exc:
        return render(request, "notifications/ack.html", {**context, "outcome": "refused", "message": str(exc)},
                      status=409)
    return render(request, "notifications/ack.html", {**context, "incident": incident, "outcome": "acknowledged"})
