"""Detection API: rules (status for the control room), alerts, and chaos operations for admins.
Writes go through detection.services."""
from django.db.models import Count, Q
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.response import Response
from rest_framework.views import APIView

from reliability_studio.access import Role
from incidents.api.schema import AutoSchema
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
    schema = AutoSchema()
    serializer_class = DetectionRuleSerializer
    filterset_fields = ["kind", "enabled", "health", "severity", "service__slug"]
    ordering_fields = ["name", "last_evaluated_at", "health"]

    def get_queryset(self):
        return DetectionRule.objects.select_related("service").annotate(
            firing=Count("alerts", filter=Q(alerts__state=AlertState.FIRING))
        ).order_by("name")

    # ValidationError from the services → 400 with the field and the source's message.
    def perform_create(self, serializer):
        rule = services.create_rule(user=self.request.user, **serializer.validated_data)
        serializer.instance = self.get_queryset().get(pk=rule.pk)  # with `firing`, as the schema says

    def perform_update(self, serializer):
        rule = services.update_rule(rule=serializer.instance, user=self.request.user, **serializer.validated_data)
        serializer.instance = self.get_queryset().get(pk=rule.pk)

    def perform_destroy(self, instance):
        services.delete_rule(rule=instance, user=self.request.user)


class AlertViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Per-series alert state (rules and external alerts)."""

    required_roles = {"list": Role.VIEWER, "retrieve": Role.VIEWER}
    schema = AutoSchema()
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
    """GET: fault state of the demo workload (responders: they run and watch drills).
    DELETE: recover everything (admins)."""

    required_roles = {"GET": Role.RESPONDER, "DELETE": Role.ADMIN}
    schema = AutoSchema()
    error_statuses = (502, 503)  # the demo workload's control API refused or did not answer

    @extend_schema(operation_id="v1_chaos_status", responses={200: dict})
    def get(self, request):
        return self._run(lambda client: client.status())

    @extend_schema(operation_id="v1_chaos_recover_all", responses={200: dict})
    def delete(self, request):
        return self._run(lambda client: client.recover())

    @staticmethod
    def _run(operation):
        try:
            return Response(operation(ChaosClient.from_settings()))
        except ChaosError as exc:
            return error_response(str(exc), exc.status if exc.status < 500 else status.HTTP_502_BAD_GATEWAY, code="chaos")


class ServiceChaosView(ChaosView):
    """GET: one service's faults (responders). POST {"kind": "error", "error_rate": 0.3} |
    {"kind": "latency", "add_ms": 800} | {"kind": "crash"}; DELETE recovers the service (admins)."""

    required_roles = {"GET": Role.RESPONDER, "POST": Role.ADMIN, "DELETE": Role.ADMIN}

    @extend_schema(responses={200: dict})
    def get(self, request, service):
        def one(client):
            services_state = client.status().get("services", {})
            if service not in services_state:
                raise ChaosError(f"unknown service {service!r}", status=status.HTTP_404_NOT_FOUND)
            return services_state[service]  # the same shape as the control API's GET /faults/<service>

        return self._run(one)

    @extend_schema(request=ChaosSerializer, responses={200: dict})
    def post(self, request, service):
        body = ChaosSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        if data["kind"] == "error":
            return self._run(lambda client: client.fail(service, data["error_rate"]))
        if data["kind"] == "latency":
            return self._run(lambda client: client.latency(service, data["add_ms"]))
        return self._run(lambda client: client.crash(service))

    @extend_schema(responses={200: dict})
    def delete(self, request, service):
        return self._run(lambda client: client.recover(service))
