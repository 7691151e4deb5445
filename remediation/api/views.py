"""Remediation API. Reads for viewers; requesting, approving and cancelling for responders (four
eyes and the other guardrails are enforced in remediation.services, not here); the kill switch for
admins. The audit log is read-only: there is no route that changes or deletes a record."""
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action as route
from rest_framework.response import Response
from rest_framework.views import APIView

from incidents.models import Incident
from reliability_studio.access import Role
from incidents.api.schema import AutoSchema

from .. import guardrails, services
from ..models import Action, AuditRecord, Runbook
from .serializers import (
    ActionCreateSerializer,
    ActionSerializer,
    AuditRecordSerializer,
    KillSwitchSerializer,
    NoteSerializer,
    RunbookSerializer,
)


class RunbookViewSet(viewsets.ReadOnlyModelViewSet):
    """Runbooks (edited as YAML in the repository, or in the admin)."""

    required_roles = {"list": Role.VIEWER, "retrieve": Role.VIEWER}
    schema = AutoSchema()
    serializer_class = RunbookSerializer
    queryset = Runbook.objects.order_by("name")
    lookup_field = "name"


class ActionViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Remediation actions: proposed by runbooks (or requested by hand), approved, executed, verified."""

    required_roles = {"list": Role.VIEWER, "retrieve": Role.VIEWER, "create": Role.RESPONDER,
                      "request_run": Role.RESPONDER, "approve": Role.RESPONDER, "cancel": Role.RESPONDER,
                      "preview": Role.RESPONDER}
    schema = AutoSchema()
    serializer_class = ActionSerializer
    queryset = Action.objects.select_related("requested_by", "approved_by").order_by("-created_at", "-id")
    filterset_fields = ["incident", "status", "kind", "verification", "runbook_name"]

    @extend_schema(request=ActionCreateSerializer, responses={201: ActionSerializer})
    def create(self, request):
        body = ActionCreateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        incident = get_object_or_404(Incident, pk=data["incident"])
        runbook = get_object_or_404(Runbook, name=data["runbook"])
        action = services.create_action(incident=incident, runbook=runbook, step_index=data["step"],
                                        service=data.get("service"), user=request.user)
        return Response(ActionSerializer(action).data, status=status.HTTP_201_CREATED)

    def _verb(self, request, fn):
        body = NoteSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        kwargs = {"note": body.validated_data["note"]} if fn is not services.refresh_dry_run else {}
        action = fn(action=self.get_object(), user=request.user, **kwargs)
        return Response(ActionSerializer(action).data)

    @extend_schema(request=NoteSerializer, responses=ActionSerializer)
    @route(detail=True, methods=["post"], url_path="request")
    def request_run(self, request, pk=None):
        """Ask for this action to run (approved at once if its step needs no approval)."""
        return self._verb(request, services.request_action)

    @extend_schema(request=NoteSerializer, responses=ActionSerializer)
    @route(detail=True, methods=["post"])
    def approve(self, request, pk=None):
        """Approve a requested action (not your own request) and queue it."""
        return self._verb(request, services.approve_action)

    @extend_schema(request=NoteSerializer, responses=ActionSerializer)
    @route(detail=True, methods=["post"])
    def cancel(self, request, pk=None):
        return self._verb(request, services.cancel_action)

    @extend_schema(request=None, responses=ActionSerializer)
    @route(detail=True, methods=["post"])
    def preview(self, request, pk=None):
        """Compute the dry run again against the live target."""
        return self._verb(request, services.refresh_dry_run)


class AuditRecordViewSet(viewsets.ReadOnlyModelViewSet):
    """The append-only audit log (the database refuses UPDATE and DELETE)."""

    required_roles = {"list": Role.VIEWER, "retrieve": Role.VIEWER}
    schema = AutoSchema()
    serializer_class = AuditRecordSerializer
    queryset = AuditRecord.objects.order_by("-at", "-id")
    filterset_fields = ["incident_id", "action_id", "event", "actor"]


class KillSwitchView(APIView):
    """The global kill switch and the circuit breaker's state; admins change the switch."""

    required_roles = {"GET": Role.VIEWER, "POST": Role.ADMIN}
    schema = AutoSchema()

    def _state(self):
        engaged, why = guardrails.kill_switch()
        breaker = guardrails.breaker()
        return {"engaged": engaged, "reason": why,
                "breaker": {"open": breaker.open, "failures": breaker.failures, "threshold": breaker.threshold}}

    @extend_schema(responses={200: dict})
    def get(self, request):
        return Response(self._state())

    @extend_schema(request=KillSwitchSerializer, responses={200: dict})
    def post(self, request):
        body = KillSwitchSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        services.set_kill_switch(engaged=body.validated_data["engaged"], reason=body.validated_data["reason"],
                                 user=request.user)
        return Response(self._state())
