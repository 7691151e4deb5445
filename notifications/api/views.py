"""Notifications API: destinations, routes, quiet hours and escalation policies (admins write,
viewers read), the delivery log and escalation schedule (read-only), and the test button.
Secrets are write-only; configuration goes through the model's full_clean (400 naming the field)."""
from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import mixins, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from reliability_studio.access import Role

from .. import services
from ..models import Delivery, Destination, EscalationPolicy, QuietHours, Route, ScheduledEscalation
from .serializers import (DeliverySerializer, DestinationSerializer, EscalationPolicySerializer,
                          QuietHoursSerializer, RouteSerializer, ScheduledEscalationSerializer, TestResultSerializer)

READ = Role.VIEWER
ADMINISTER = Role.ADMIN
CONFIG_ROLES = {"list": READ, "retrieve": READ, "create": ADMINISTER, "update": ADMINISTER,
                "partial_update": ADMINISTER, "destroy": ADMINISTER}


class DestinationViewSet(viewsets.ModelViewSet):
    required_roles = {**CONFIG_ROLES, "test": ADMINISTER}
    serializer_class = DestinationSerializer
    queryset = Destination.objects.order_by("name")
    filterset_fields = ["kind", "enabled"]

    def perform_create(self, serializer):
        serializer.instance = services.save_destination(**serializer.validated_data)

    def perform_update(self, serializer):
        serializer.instance = services.save_destination(destination=serializer.instance, **serializer.validated_data)

    @extend_schema(request=None, responses=TestResultSerializer)
    @action(detail=True, methods=["post"])
    def test(self, request, pk=None):
        """Send a sample notification to this destination now."""
        result = services.send_test(destination=self.get_object())
        return Response(TestResultSerializer(result).data, status=200 if result["ok"] else 502)


class RouteViewSet(viewsets.ModelViewSet):
    required_roles = CONFIG_ROLES
    serializer_class = RouteSerializer
    queryset = Route.objects.prefetch_related("services", "destinations").order_by("position", "id")


class QuietHoursViewSet(viewsets.ModelViewSet):
    required_roles = CONFIG_ROLES
    serializer_class = QuietHoursSerializer
    queryset = QuietHours.objects.order_by("team")


class EscalationPolicyViewSet(viewsets.ModelViewSet):
    required_roles = CONFIG_ROLES
    serializer_class = EscalationPolicySerializer
    queryset = EscalationPolicy.objects.prefetch_related("steps__destinations").order_by("team", "name")


class DeliveryViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """The notification log: filter by ?incident=<id>, ?status=, ?destination_kind=."""

    required_roles = {"list": READ, "retrieve": READ}
    serializer_class = DeliverySerializer
    queryset = Delivery.objects.order_by("-created_at", "-id")
    filterset_fields = ["incident", "status", "destination_kind", "event"]


class ScheduledEscalationViewSet(mixins.ListModelMixin, viewsets.GenericViewSet):
    required_roles = {"list": READ}
    serializer_class = ScheduledEscalationSerializer
    queryset = ScheduledEscalation.objects.order_by("due_at", "id")
    filterset_fields = ["incident", "status"]
