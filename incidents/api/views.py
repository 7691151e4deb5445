"""Incidents API. Each view states its permission map at the top; writes call incidents.services."""
from __future__ import annotations

import functools
import hashlib

from django.core.paginator import Paginator
from django.db.models import Prefetch
from django.utils.http import parse_etags
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.renderers import BrowsableAPIRenderer
from rest_framework.response import Response

from reliability_studio.access import Role, role_of
from .schema import AutoSchema

from .. import selectors, services
from ..models import Incident, Service, Status, Task
from .filters import IncidentFilter
from .renderers import ORJSONRenderer
from .serializers import (
    BlastRadiusEntrySerializer,
    CommentSerializer,
    IncidentListSerializer,
    IncidentSerializer,
    IncidentUpdateSerializer,
    ServiceSerializer,
    TaskSerializer,
    TimelineEventSerializer,
    TransitionSerializer,
)

READ = Role.VIEWER
RESPOND = Role.RESPONDER
ADMINISTER = Role.ADMIN


class ServiceViewSet(viewsets.ModelViewSet):
    """The service catalog with its dependency graph. Writes go through incidents.services: a
    dependency cycle is refused (400), and a service still referenced cannot be deleted (409)."""

    required_roles = {"list": READ, "retrieve": READ, "blast_radius": READ, "create": ADMINISTER,
                      "update": ADMINISTER, "partial_update": ADMINISTER, "destroy": ADMINISTER}
    schema = AutoSchema()
    serializer_class = ServiceSerializer
    queryset = Service.objects.prefetch_related("depends_on").order_by("slug")
    lookup_field = "slug"
    lookup_value_regex = r"[-a-zA-Z0-9_]+"  # what a slug can hold (and so the schema says it)
    filterset_fields = ["tier", "owner_team"]
    ordering_fields = ["slug", "name", "tier"]

    def perform_create(self, serializer):
        data = dict(serializer.validated_data)
        serializer.instance = services.create_service(user=self.request.user, **data)

    def perform_update(self, serializer):
        serializer.instance = services.update_service(
            service=serializer.instance, user=self.request.user, **serializer.validated_data
        )

    def perform_destroy(self, instance):
        services.delete_service(service=instance, user=self.request.user)

    # A bare list (the graph around one service is small); not paginated, and documented so.
    @extend_schema(responses=BlastRadiusEntrySerializer(many=True))
    @action(detail=True, methods=["get"], url_path="blast-radius", pagination_class=None, filter_backends=[])
    def blast_radius(self, request, slug=None):
        """Services that depend on this one, directly or transitively."""
        service = self.get_object()
        rows = [
            {"slug": s.slug, "name": s.name, "tier": s.tier, "distance": d} for s, d in selectors.blast_radius([service])
        ]
        return Response(BlastRadiusEntrySerializer(rows, many=True).data)


# Conditional GETs on the incident list and detail (JSON only: the browsable API page carries the
# user's CSRF token and name). The tag is built from a cheap version statement in incidents.selectors
# (run before the content is read), the query string, the role and ETAG_SCHEMA, which changes
# whenever a list row or an incident's JSON changes shape.
ETAG_SCHEMA = "1"


def _etag(request, *parts) -> str:
    raw = "|".join(map(str, (ETAG_SCHEMA, int(role_of(request.user)), *parts)))
    return 'W/"' + hashlib.blake2b(raw.encode(), digest_size=12).hexdigest() + '"'


def _conditional(request) -> bool:
    return request.method in ("GET", "HEAD") and request.accepted_renderer.format == "json"


def _not_modified(request, etag: str) -> Response | None:
    """304 when If-None-Match names `etag` (weak comparison, as RFC 9110 asks for GET)."""
    header = request.headers.get("If-None-Match")
    if not header:
        return None
    offered = {tag.removeprefix("W/") for tag in parse_etags(header)}
    if "*" in offered or etag.removeprefix("W/") in offered:
        return _tagged(Response(status=status.HTTP_304_NOT_MODIFIED), etag)
    return None


def _tagged(response: Response, etag: str) -> Response:
    response["ETag"] = etag
    response["Cache-Control"] = "private, no-cache"  # may be kept, but revalidated every time
    return response


class _CountedPaginator(Paginator):
    """A paginator told the count already (the list's ETag statement has it): no second COUNT."""

    def __init__(self, *args, count: int, **kwargs):
        super().__init__(*args, **kwargs)
        self.__dict__["count"] = count  # Paginator.count is a cached_property


def _get_incident(lookup: str) -> Incident:
    """Accept both the id (42) and the human key (INC-42)."""
    raw = lookup.upper().removeprefix("INC-")
    if not raw.isdigit():
        return get_object_or_404(Incident, pk=-1)
    return get_object_or_404(Incident.objects.select_related("primary_service", "commander"), pk=int(raw))


class IncidentViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Incidents. Status changes are explicit actions: acknowledge, investigate, mitigate, resolve, reopen."""

    required_roles = {
        "list": READ, "retrieve": READ, "timeline": READ, "tasks": READ, "blast_radius": READ,
        "timeline:POST": RESPOND, "tasks:POST": RESPOND,
        "create": RESPOND, "partial_update": RESPOND, "acknowledge": RESPOND, "investigate": RESPOND,
        "mitigate": RESPOND, "resolve": RESPOND, "reopen": RESPOND,
    }
    schema = AutoSchema()
    serializer_class = IncidentSerializer
    renderer_classes = [ORJSONRenderer, BrowsableAPIRenderer]
    filterset_class = IncidentFilter
    ordering_fields = ["started_at", "severity", "status", "updated_at"]
    lookup_value_regex = r"(?i:INC-)?\d+"

    def get_queryset(self):
        return Incident.objects.select_related("primary_service", "commander").prefetch_related(
            Prefetch("affected_services", queryset=Service.objects.only("id", "slug"))
        ).order_by("-started_at", "-id")

    @extend_schema(responses=IncidentListSerializer(many=True))
    def list(self, request):
        queryset = self.filter_queryset(Incident.objects.order_by("-started_at", "-id"))
        etag = None
        if _conditional(request):
            query = "&".join(sorted(request.META.get("QUERY_STRING", "").split("&")))
            version = selectors.incident_list_version(queryset)
            etag = _etag(request, "list", query, *version)
            if (response := _not_modified(request, etag)) is not None:
                return response
            self.paginator.django_paginator_class = functools.partial(_CountedPaginator, count=version[0])
        page = self.paginate_queryset(selectors.incident_list_values(queryset))
        response = self.get_paginated_response(selectors.finish_list_rows(page))
        return _tagged(response, etag) if etag else response

    def retrieve(self, request, pk=None):
        etag = None
        raw = str(pk).upper().removeprefix("INC-")
        if _conditional(request) and raw.isdigit():
            version = selectors.incident_detail_version(int(raw))
            if version is not None:
                etag = _etag(request, "detail", raw, *version)
                if (response := _not_modified(request, etag)) is not None:
                    return response
        response = Response(IncidentSerializer(self.get_object()).data)
        return _tagged(response, etag) if etag else response

    def get_object(self):
        return _get_incident(self.kwargs["pk"])

    def get_serializer_class(self):
        return IncidentUpdateSerializer if self.action == "partial_update" else IncidentSerializer

    def create(self, request):
        serializer = IncidentSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        incident = services.create_incident(
            title=data["title"],
            severity=data["severity"],
            summary=data.get("summary", ""),
            impact=data.get("impact", ""),
            fingerprint=data.get("fingerprint"),
            primary_service=data.get("primary_service"),
            affected_services=data.get("affected_services", []),
            labels=data.get("labels"),
            started_at=data.get("started_at"),
            commander=data.get("commander"),
            user=request.user,
        )
        return Response(IncidentSerializer(incident).data, status=status.HTTP_201_CREATED)

    def partial_update(self, request, pk=None):
        incident = self.get_object()
        serializer = IncidentUpdateSerializer(incident, data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        incident = services.update_incident(incident=incident, user=request.user, **serializer.validated_data)
        return Response(IncidentSerializer(incident).data)

    def _transition(self, request, to: str):
        body = TransitionSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        incident = services.transition_incident(
            incident=self.get_object(), to=to, user=request.user, note=body.validated_data["note"]
        )
        return Response(IncidentSerializer(incident).data)

    @extend_schema(request=TransitionSerializer, responses=IncidentSerializer)
    @action(detail=True, methods=["post"])
    def acknowledge(self, request, pk=None):
        body = TransitionSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        incident = services.acknowledge_incident(incident=self.get_object(), user=request.user, note=body.validated_data["note"])
        return Response(IncidentSerializer(incident).data)

    @extend_schema(request=TransitionSerializer, responses=IncidentSerializer)
    @action(detail=True, methods=["post"])
    def investigate(self, request, pk=None):
        return self._transition(request, Status.INVESTIGATING)

    @extend_schema(request=TransitionSerializer, responses=IncidentSerializer)
    @action(detail=True, methods=["post"])
    def mitigate(self, request, pk=None):
        return self._transition(request, Status.MITIGATED)

    @extend_schema(request=TransitionSerializer, responses=IncidentSerializer)
    @action(detail=True, methods=["post"])
    def resolve(self, request, pk=None):
        return self._transition(request, Status.RESOLVED)

    @extend_schema(request=TransitionSerializer, responses=IncidentSerializer)
    @action(detail=True, methods=["post"])
    def reopen(self, request, pk=None):
        return self._transition(request, Status.OPEN)

    @extend_schema(methods=["GET"], responses=TimelineEventSerializer(many=True))
    @extend_schema(methods=["POST"], request=CommentSerializer, responses={201: TimelineEventSerializer})
    @action(detail=True, methods=["get", "post"])
    def timeline(self, request, pk=None):
        """The append-only timeline; POST appends a comment (responders)."""
        incident = self.get_object()
        if request.method == "POST":
            body = CommentSerializer(data=request.data)
            body.is_valid(raise_exception=True)
            event = services.add_comment(incident=incident, user=request.user, message=body.validated_data["message"])
            return Response(TimelineEventSerializer(event).data, status=status.HTTP_201_CREATED)
        page = self.paginate_queryset(incident.timeline.all())
        return self.get_paginated_response(TimelineEventSerializer(page, many=True).data)

    # GET is a bare list (an incident has a handful of tasks), documented so: clients read a list.
    @extend_schema(methods=["GET"], responses=TaskSerializer(many=True))
    @extend_schema(methods=["POST"], request=TaskSerializer, responses={201: TaskSerializer})
    @action(detail=True, methods=["get", "post"], pagination_class=None, filter_backends=[])
    def tasks(self, request, pk=None):
        """Action items; POST adds one (responders)."""
        incident = self.get_object()
        if request.method == "POST":
            body = TaskSerializer(data=request.data)
            body.is_valid(raise_exception=True)
            task = services.create_task(incident=incident, user=request.user, **body.validated_data)
            return Response(TaskSerializer(task).data, status=status.HTTP_201_CREATED)
        return Response(TaskSerializer(incident.tasks.select_related("owner"), many=True).data)

    @extend_schema(responses=BlastRadiusEntrySerializer(many=True))
    @action(detail=True, methods=["get"], url_path="blast-radius", pagination_class=None, filter_backends=[])
    def blast_radius(self, request, pk=None):
        rows = [
            {"slug": s.slug, "name": s.name, "tier": s.tier, "distance": d}
            for s, d in selectors.incident_blast_radius(self.get_object())
        ]
        return Response(BlastRadiusEntrySerializer(rows, many=True).data)


class TaskViewSet(mixins.RetrieveModelMixin, mixins.UpdateModelMixin, viewsets.GenericViewSet):
    """One action item: responders update its title, owner, due date or done state."""

    required_roles = {"retrieve": READ, "update": RESPOND, "partial_update": RESPOND}
    schema = AutoSchema()
    serializer_class = TaskSerializer
    queryset = Task.objects.select_related("owner")

    def update(self, request, *args, partial=False, **kwargs):
        task = self.get_object()
        body = TaskSerializer(task, data=request.data, partial=partial)
        body.is_valid(raise_exception=True)
        task = services.update_task(task=task, user=request.user, **body.validated_data)
        return Response(TaskSerializer(task).data)
