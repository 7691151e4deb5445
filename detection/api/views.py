"""Detection API: rules (status for the control room), alerts, and chaos operations for admins."""
from django.db import transaction
from django.db.models import Count, Q
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.response import Response
from rest_framework.views import APIView

from reliability_studio.access import Role
from reliability_studio.api import error_response

from .. import services
from ..chaos import ChaosClient, ChaosError
from ..models import Alert, AlertState, DetectionRule
from .serializers import AlertSerializer, DetectionRuleSerializer


class DetectionRuleViewSet(viewsets.ModelViewSet):
    """Detection rules with their evaluation status. Admins write; saving validates the query
    against its source and refuses a bad one with the source's message."""

    required_roles = {"list": Role.VIEWER, "retrieve": Role.VIEWER, "create": Role.ADMIN, "update": Role.ADMIN,
                      "partial_update": Role.ADMIN, "destroy": Role.ADMIN}
    serializer_class = DetectionRuleSerializer
    filterset_fields = ["kind", "enabled", "health", "severity", "service__slug"]
    ordering_fields = ["name", "last_evaluated_at", "health"]

    def get_queryset(self):
        return DetectionRule.objects.select_related("service").annotate(
            firing=Count("alerts", filter=Q(alerts__state=AlertState.FIRING))
        ).order_by("name")

    def perform_create(self, serializer):
        self._validated_save(serializer)

    def perform_update(self, serializer):
        self._validated_save(serializer)

    @staticmethod
    def _validated_save(serializer):
        rule = serializer.instance or DetectionRule()
        for field, value in serializer.validated_data.items():
            setattr(rule, field, value)
        services.validate_rule(rule)  # ValidationError → 400 with the field and the source's message
        with transaction.atomic():
            rule.save()
        serializer.instance = rule


class AlertViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Per-series alert state (rules and external alerts)."""

    required_roles = {"list": Role.VIEWER, "retrieve": Role.VIEWER}
    serializer_class = AlertSerializer
    queryset = Alert.objects.select_related("rule", "source", "service").order_by("-updated_at")
    filterset_fields = ["state", "severity", "rule", "source"]


class ChaosSerializer(serializers.Serializer):
    kind = serializers.ChoiceField(choices=["error", "latency", "crash"])
    error_rate = serializers.FloatField(required=False, min_value=0.0001, max_value=1)
    add_ms = serializers.FloatField(required=False, min_value=1, max_value=60_000)

    def validate(self, data):
        if data["kind"] == "error" and "error_rate" not in data:
            raise serializers.ValidationError({"error_rate": "required for an error fault"})
        if data["kind"] == "latency" and "add_ms" not in data:
            raise serializers.ValidationError({"add_ms": "required for a latency fault"})
        return data


class ChaosView(APIView):
    """GET: fault state of the demo workload. DELETE: recover everything. Admins only."""

    required_roles = {"GET": Role.ADMIN, "DELETE": Role.ADMIN}

    def get(self, request):
        return self._run(lambda client: client.status())

    def delete(self, request):
        return self._run(lambda client: client.recover())

    @staticmethod
    def _run(operation):
        try:
            return Response(operation(ChaosClient.from_settings()))
        except ChaosError as exc:
            return error_response(str(exc), exc.status if exc.status < 500 else status.HTTP_502_BAD_GATEWAY, code="chaos")


class ServiceChaosView(ChaosView):
    """POST {"kind": "error", "error_rate": 0.3} | {"kind": "latency", "add_ms": 800} | {"kind": "crash"};
    DELETE recovers the service."""

    required_roles = {"POST": Role.ADMIN, "DELETE": Role.ADMIN}

    @extend_schema(request=ChaosSerializer)
    def post(self, request, service):
        body = ChaosSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        if data["kind"] == "error":
            return self._run(lambda client: client.fail(service, data["error_rate"]))
        if data["kind"] == "latency":
            return self._run(lambda client: client.latency(service, data["add_ms"]))
        return self._run(lambda client: client.crash(service))

    def delete(self, request, service):
        return self._run(lambda client: client.recover(service))
