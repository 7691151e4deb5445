"""API shapes. Serializers validate and present; writes go through incidents.services."""
from __future__ import annotations

from django.contrib.auth import get_user_model
from rest_framework import serializers

from reliability_studio.api import SlugRelatedField, validate_string_map

from ..models import EventKind, Incident, Service, Severity, Source, Task, TimelineEvent

User = get_user_model()


class ServiceSerializer(serializers.ModelSerializer):
    depends_on = SlugRelatedField(slug_field="slug", many=True, queryset=Service.objects.all(), required=False)

    class Meta:
        model = Service
        fields = [
            "id", "slug", "name", "owner_team", "tier", "labels", "runbook_url", "repository_url", "description",
            "depends_on", "created_at", "updated_at",
        ]
        read_only_fields = ["created_at", "updated_at"]

    def validate_labels(self, value):
        return validate_string_map(value)


class BlastRadiusEntrySerializer(serializers.Serializer):
    slug = serializers.CharField()
    name = serializers.CharField()
    tier = serializers.CharField()
    distance = serializers.IntegerField()


def _seconds(delta):
    return None if delta is None else round(delta.total_seconds(), 3)


class IncidentSerializer(serializers.ModelSerializer):
    key = serializers.CharField(read_only=True)
    primary_service = SlugRelatedField(slug_field="slug", queryset=Service.objects.all(), required=False, allow_null=True)
    affected_services = SlugRelatedField(slug_field="slug", many=True, queryset=Service.objects.all(), required=False)
    commander = SlugRelatedField(slug_field="username", queryset=User.objects.all(), required=False, allow_null=True)
    severity = serializers.ChoiceField(choices=Severity.choices)
    mttd_seconds = serializers.SerializerMethodField()
    mtta_seconds = serializers.SerializerMethodField()
    mttr_seconds = serializers.SerializerMethodField()

    class Meta:
        model = Incident
        fields = [
            "id", "key", "title", "summary", "impact", "root_cause", "severity", "status", "source", "fingerprint",
            "labels", "primary_service", "affected_services", "commander", "started_at", "detected_at",
            "acknowledged_at", "mitigated_at", "resolved_at", "reopened_count", "mttd_seconds", "mtta_seconds",
            "mttr_seconds", "created_at", "updated_at",
        ]
        read_only_fields = [
            "status", "source", "detected_at", "acknowledged_at", "mitigated_at", "resolved_at", "reopened_count",
            "created_at", "updated_at",
        ]
        # Uniqueness is the service's job (409 with the clashing incident), race-safe in the database.
        validators = []

    def get_mttd_seconds(self, obj) -> float | None:
        return _seconds(obj.time_to_detect)

    def get_mtta_seconds(self, obj) -> float | None:
        return _seconds(obj.time_to_acknowledge)

    def get_mttr_seconds(self, obj) -> float | None:
        return _seconds(obj.time_to_resolve)

    def validate_labels(self, value):
        return validate_string_map(value)


class IncidentListSerializer(serializers.Serializer):
    """The list row (documents the shape; rows are built by selectors.incident_list_rows)."""

    id = serializers.IntegerField()
    key = serializers.CharField()
    title = serializers.CharField()
    severity = serializers.ChoiceField(choices=Severity.choices)
    status = serializers.CharField()
    source = serializers.CharField()
    fingerprint = serializers.CharField(allow_null=True)
    primary_service = serializers.CharField(allow_null=True)
    affected_services = serializers.ListField(child=serializers.CharField())
    commander = serializers.CharField(allow_null=True)
    started_at = serializers.DateTimeField()
    detected_at = serializers.DateTimeField()
    acknowledged_at = serializers.DateTimeField(allow_null=True)
    mitigated_at = serializers.DateTimeField(allow_null=True)
    resolved_at = serializers.DateTimeField(allow_null=True)
    updated_at = serializers.DateTimeField()


class IncidentUpdateSerializer(IncidentSerializer):
    class Meta(IncidentSerializer.Meta):
        read_only_fields = IncidentSerializer.Meta.read_only_fields + ["fingerprint", "labels"]


class TransitionSerializer(serializers.Serializer):
    note = serializers.CharField(required=False, allow_blank=True, max_length=2000, default="")


class TimelineEventSerializer(serializers.ModelSerializer):
    class Meta:
        model = TimelineEvent
        fields = ["id", "kind", "occurred_at", "created_at", "actor", "message", "data"]
        read_only_fields = fields


class CommentSerializer(serializers.Serializer):
    message = serializers.CharField(max_length=10_000)


class TaskSerializer(serializers.ModelSerializer):
    owner = SlugRelatedField(slug_field="username", queryset=User.objects.all(), required=False, allow_null=True)
    incident = serializers.PrimaryKeyRelatedField(read_only=True)

    class Meta:
        model = Task
        fields = ["id", "incident", "title", "owner", "done", "done_at", "due_at", "created_at", "updated_at"]
        read_only_fields = ["done_at", "created_at", "updated_at"]


SOURCE_CHOICES = Source.choices
KIND_CHOICES = EventKind.choices
