from rest_framework import serializers

from incidents.models import Service
from reliability_studio.api import SlugRelatedField, validate_string_map

from ..models import Alert, DetectionRule


class DetectionRuleSerializer(serializers.ModelSerializer):
    service = SlugRelatedField(slug_field="slug", queryset=Service.objects.all(), required=False, allow_null=True)
    firing = serializers.IntegerField(read_only=True, help_text="alerts of this rule firing now")

    class Meta:
        model = DetectionRule
        fields = [
            "id", "name", "kind", "service", "severity", "query", "comparator", "threshold", "anomaly_method",
            "baseline_window_seconds", "kubernetes_condition", "kubernetes_namespace", "kubernetes_selector",
            "for_seconds", "recovery_hold_seconds", "evaluation_interval_seconds", "labels", "runbook_url",
            "description", "enabled", "health", "last_evaluated_at", "last_value", "last_error", "last_duration_ms",
            "firing", "created_at", "updated_at",
        ]
        read_only_fields = ["health", "last_evaluated_at", "last_value", "last_error", "last_duration_ms",
                            "created_at", "updated_at"]

    def validate_labels(self, value):
        return validate_string_map(value)


class AlertSerializer(serializers.ModelSerializer):
    # An alert comes from a rule or from an external source, so one of the two is always null (and
    # both once its rule is deleted); a service is known only when its labels name one.
    rule = serializers.SlugRelatedField(slug_field="name", read_only=True, allow_null=True)
    source = serializers.SlugRelatedField(slug_field="name", read_only=True, allow_null=True)
    service = serializers.SlugRelatedField(slug_field="slug", read_only=True, allow_null=True)
    incident = serializers.SerializerMethodField()

    class Meta:
        model = Alert
        fields = ["id", "fingerprint", "name", "rule", "source", "service", "severity", "labels", "annotations",
                  "state", "value", "active_since", "firing_since", "last_active_at", "resolved_at", "incident",
                  "received_count", "updated_at"]
        read_only_fields = fields

    def get_incident(self, obj) -> str | None:
        return f"INC-{obj.incident_id}" if obj.incident_id else None
