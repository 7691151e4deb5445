"""SLO API: definitions with their computed state, history, incidents that consumed budget,
budget consumed over any interval, Prometheus rules export, and OpenSLO v1 import/export.

Admins write; saving validates the objective, window and queries (against Prometheus) and
refuses a bad one with a 400 naming the field."""
from django.http import HttpResponse
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status, viewsets
from rest_framework.decorators import action
from rest_framework.parsers import BaseParser, JSONParser
from rest_framework.response import Response

from reliability_studio.access import Role
from reliability_studio.api import error_response
from reliability_studio.telemetry.errors import TelemetryError

from .. import openslo, rules, selectors, services
from ..models import SLO
from .serializers import (BudgetQuerySerializer, ImpactSerializer, OpenSLOImportSerializer, SLOSerializer,
                          SnapshotSerializer)

YAML = "application/yaml"


class YAMLTextParser(BaseParser):
    """A raw OpenSLO document (`Content-Type: application/yaml`)."""

    media_type = "application/yaml"

    def parse(self, stream, media_type=None, parser_context=None):
        return {"yaml": stream.read().decode("utf-8", errors="replace")}


class SLOViewSet(viewsets.ModelViewSet):
    required_roles = {"list": Role.VIEWER, "retrieve": Role.VIEWER, "create": Role.ADMIN, "update": Role.ADMIN,
                      "partial_update": Role.ADMIN, "destroy": Role.ADMIN, "history": Role.VIEWER,
                      "incidents": Role.VIEWER, "budget": Role.VIEWER, "rules": Role.VIEWER,
                      "rules_all": Role.VIEWER, "openslo": Role.VIEWER, "openslo_export": Role.VIEWER,
                      "openslo_import": Role.ADMIN}
    serializer_class = SLOSerializer
    filterset_fields = ["sli_kind", "status", "enabled", "window_days", "service__slug"]
    ordering_fields = ["name", "budget_remaining", "status", "computed_at"]

    def get_queryset(self):
        return SLO.objects.select_related("service").order_by("service__slug", "name")

    def perform_create(self, serializer):
        self._validated_save(serializer)

    def perform_update(self, serializer):
        self._validated_save(serializer)

    @staticmethod
    def _validated_save(serializer):
        slo = serializer.instance or SLO()
        for field, value in serializer.validated_data.items():
            setattr(slo, field, value)
        services.save_slo(slo=slo)  # ValidationError → 400 with the field and Prometheus's message
        serializer.instance = slo

    @extend_schema(responses=SnapshotSerializer(many=True))
    @action(detail=True, methods=["get"])
    def history(self, request, pk=None):
        slo = self.get_object()
        page = self.paginate_queryset(slo.snapshots.order_by("-at"))
        return self.get_paginated_response(SnapshotSerializer(page, many=True).data)

    @extend_schema(responses=ImpactSerializer(many=True))
    @action(detail=True, methods=["get"])
    def incidents(self, request, pk=None):
        """The incidents that consumed this SLO's budget, newest first."""
        slo = self.get_object()
        page = self.paginate_queryset(selectors.incidents_that_consumed(slo))
        return self.get_paginated_response(ImpactSerializer(page, many=True).data)

    @extend_schema(parameters=[OpenApiParameter("start", str), OpenApiParameter("end", str)])
    @action(detail=True, methods=["get"])
    def budget(self, request, pk=None):
        """Budget consumed between ?start= and ?end= (ISO 8601)."""
        slo = self.get_object()
        query = BudgetQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        try:
            used = services.budget_consumed(slo, query.validated_data["start"], query.validated_data["end"])
        except TelemetryError as exc:
            return error_response(f"Prometheus unavailable: {exc}", status.HTTP_502_BAD_GATEWAY, code="source")
        return Response({"slo": slo.slug, "start": used.start, "end": used.end, "bad_events": used.bad,
                         "total_events": used.total, "consumed": used.consumed,
                         "consumed_minutes": used.consumed_minutes, "no_data": used.consumed is None})

    @action(detail=True, methods=["get"])
    def rules(self, request, pk=None):
        """Prometheus recording and alerting rules (Sloth's shape) as YAML."""
        return HttpResponse(rules.rules_yaml([self.get_object()]), content_type=YAML)

    @extend_schema(operation_id="v1_slos_rules_all")
    @action(detail=False, methods=["get"], url_path="rules")
    def rules_all(self, request):
        return HttpResponse(rules.rules_yaml(self.filter_queryset(self.get_queryset())), content_type=YAML)

    @action(detail=True, methods=["get"])
    def openslo(self, request, pk=None):
        """The SLO as an OpenSLO v1 document."""
        return HttpResponse(openslo.export_yaml([self.get_object()]), content_type=YAML)

    @extend_schema(operation_id="v1_slos_openslo_all")
    @action(detail=False, methods=["get"], url_path="openslo")
    def openslo_export(self, request):
        return HttpResponse(openslo.export_yaml(self.filter_queryset(self.get_queryset())), content_type=YAML)

    @extend_schema(request=OpenSLOImportSerializer, responses=SLOSerializer(many=True))
    @action(detail=False, methods=["post"], url_path="import", parser_classes=[JSONParser, YAMLTextParser])
    def openslo_import(self, request):
        """Create or update SLOs from OpenSLO v1 YAML (JSON {"yaml": "..."} or an application/yaml
        body). Unsupported fields are refused with their names; nothing is written on any error."""
        body = OpenSLOImportSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        results = services.import_openslo(text=body.validated_data["yaml"])  # ValidationError → 400
        data = SLOSerializer([slo for slo, _ in results], many=True).data
        created = sum(1 for _, was_created in results if was_created)
        return Response({"created": created, "updated": len(results) - created, "slos": data},
                        status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)
