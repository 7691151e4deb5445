"""Investigation API. Each view states its permission map at the top; writes call investigation.services.

    GET   /api/v1/incidents/{key}/investigation/                     latest run (steps, evidence), earlier
                                                                    runs (ids, status), hypotheses
    POST  /api/v1/incidents/{key}/investigation/                     re-run → 202 with the queued run
    PATCH /api/v1/incidents/{key}/investigation/hypotheses/{id}/     {"status": "confirmed"|"rejected", "note"}
    GET   /api/v1/changes/?service=<slug>&since=<ISO>               recorded changes, newest first
    POST  /api/v1/changes/                                           record one (201; 200 when external_id is known)

Deciding an already-decided hypothesis differently is allowed (a responder corrects a mistake; the
timeline keeps both entries); the same decision again is a no-op answered 200.
"""
from __future__ import annotations

from django.shortcuts import get_object_or_404
from django.utils.dateparse import parse_datetime
from drf_spectacular.utils import extend_schema
from rest_framework import generics, status
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response
from rest_framework.views import APIView

from incidents.api.views import _get_incident
from reliability_studio.access import Role

from .. import selectors, services
from ..models import Change, ChangeSource, Hypothesis, InvestigationRun, Trigger
from .serializers import (
    ChangeSerializer,
    DecisionSerializer,
    HypothesisSerializer,
    RunSerializer,
    RunSummarySerializer,
)

READ = Role.VIEWER
RESPOND = Role.RESPONDER


def investigation_document(incident) -> dict:
    runs = list(incident.investigation_runs.order_by("-created_at", "-id"))
    latest = None
    if runs:
        latest = InvestigationRun.objects.prefetch_related("evidence").select_related("requested_by").get(pk=runs[0].pk)
    standing, rejected = selectors.ranked_hypotheses(incident)
    return {
        "incident": incident.key,
        "latest": RunSerializer(latest).data if latest else None,
        "runs": RunSummarySerializer(runs, many=True).data,
        "hypotheses": HypothesisSerializer(standing + rejected, many=True).data,
    }


class InvestigationView(APIView):
    """An incident's investigation: read it, or run it again."""

    required_roles = {"GET": READ, "HEAD": READ, "OPTIONS": READ, "POST": RESPOND}

    @extend_schema(responses={200: dict})
    def get(self, request, key: str):
        return Response(investigation_document(_get_incident(key)))

    @extend_schema(request=None, responses={202: RunSerializer})
    def post(self, request, key: str):
        incident = _get_incident(key)
        run = services.start_investigation(incident=incident, trigger=Trigger.MANUAL, user=request.user)
        run.refresh_from_db()
        return Response(RunSerializer(run).data, status=status.HTTP_202_ACCEPTED)


class HypothesisDecisionView(APIView):
    """Confirm or reject one hypothesis of the incident."""

    required_roles = {"GET": READ, "PATCH": RESPOND}

    def _hypothesis(self, key: str, pk: int) -> Hypothesis:
        incident = _get_incident(key)
        return get_object_or_404(Hypothesis, pk=pk, incident=incident)

    @extend_schema(responses=HypothesisSerializer)
    def get(self, request, key: str, pk: int):
        return Response(HypothesisSerializer(self._hypothesis(key, pk)).data)

    @extend_schema(request=DecisionSerializer, responses=HypothesisSerializer)
    def patch(self, request, key: str, pk: int):
        hypothesis = self._hypothesis(key, pk)
        body = DecisionSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        decided = services.decide_hypothesis(hypothesis=hypothesis, status=body.validated_data["status"],
                                             user=request.user, note=body.validated_data["note"])
        return Response(HypothesisSerializer(decided).data)


class ChangeListView(generics.ListCreateAPIView):
    """Deploys and configuration changes, recorded by CI/CD (idempotent on external_id)."""

    required_roles = {"GET": READ, "HEAD": READ, "OPTIONS": READ, "POST": RESPOND}
    serializer_class = ChangeSerializer
    filter_backends: list = []

    def get_queryset(self):
        queryset = Change.objects.select_related("service", "recorded_by").order_by("-occurred_at", "-id")
        service = self.request.query_params.get("service")
        if service:
            queryset = queryset.filter(service__slug=service)
        since = self.request.query_params.get("since")
        if since:
            parsed = parse_datetime(since)
            if parsed is None:
                raise ValidationError({"since": ["Use an ISO 8601 date and time, e.g. 2026-01-31T10:00:00Z."]})
            queryset = queryset.filter(occurred_at__gte=parsed)
        return queryset

    def create(self, request, *args, **kwargs):
        body = ChangeSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        change, created = services.record_change(
            service=data["service"], version=data.get("version", ""), kind=data.get("kind"),
            source=ChangeSource.API, author=data.get("author", ""), url=data.get("url", ""),
            description=data.get("description", ""), occurred_at=data.get("occurred_at"),
            external_id=data.get("external_id"), user=request.user)
        return Response(ChangeSerializer(change).data, status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)
