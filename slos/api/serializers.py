from rest_framework import serializers

from incidents.models import Service

from ..selectors import forecast_text
from ..models import SLO, IncidentBudgetImpact, SLOSnapshot

STATE_FIELDS = ["status", "sli", "good_events", "total_events", "budget_remaining", "burn_rates", "alert_rows",
                "forecast_seconds", "stale", "last_error", "computed_at"]


class SLOSerializer(serializers.ModelSerializer):
    service = serializers.SlugRelatedField(slug_field="slug", queryset=Service.objects.all())
    slug = serializers.SlugField(required=False, allow_blank=True, max_length=120)
    error_budget = serializers.FloatField(read_only=True)
    budget_minutes = serializers.FloatField(read_only=True)
    consumed_minutes = serializers.SerializerMethodField()
    forecast = serializers.SerializerMethodField()
    burn_thresholds = serializers.SerializerMethodField()

    class Meta:
        model = SLO
        fields = ["id", "slug", "service", "name", "sli_kind", "selector", "metric", "error_matcher",
                  "latency_threshold_seconds", "good_query", "total_query", "objective", "window_days", "owner",
                  "description", "labels", "severity_policy", "enabled", "error_budget", "budget_minutes",
                  "consumed_minutes", "forecast", "burn_thresholds", *STATE_FIELDS, "created_at", "updated_at"]
        read_only_fields = [*STATE_FIELDS, "created_at", "updated_at"]
        # The model's clean() is the one validation (objective, window, SLI, queries): run in the view.
        validators = []

    def get_consumed_minutes(self, obj) -> float | None:
        return None if obj.budget_remaining is None else (1 - obj.budget_remaining) * obj.budget_minutes

    def get_forecast(self, obj) -> str:
        return forecast_text(obj)

    def get_burn_thresholds(self, obj) -> dict:
        return {name: round(value, 6) for name, value in obj.burn_thresholds().items()}


class SnapshotSerializer(serializers.ModelSerializer):
    class Meta:
        model = SLOSnapshot
        fields = ["at", "status", "sli", "good_events", "total_events", "budget_remaining", "burn_rates"]


class ImpactSerializer(serializers.ModelSerializer):
    incident = serializers.SerializerMethodField()

    class Meta:
        model = IncidentBudgetImpact
        fields = ["incident", "start", "end", "bad_events", "total_events", "consumed", "consumed_minutes", "final",
                  "error", "computed_at"]

    def get_incident(self, obj) -> dict:
        return {"id": obj.incident_id, "key": obj.incident.key, "title": obj.incident.title,
                "status": obj.incident.status}


class OpenSLOImportSerializer(serializers.Serializer):
    yaml = serializers.CharField(help_text="OpenSLO v1 YAML (one or more documents)", trim_whitespace=False)


class BudgetQuerySerializer(serializers.Serializer):
    start = serializers.DateTimeField()
    end = serializers.DateTimeField()

    def validate(self, data):
        if data["end"] <= data["start"]:
            raise serializers.ValidationError({"end": "must be after start"})
        return data

