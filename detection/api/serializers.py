from rest_framework import serializers

from incidents.models import Service

from ..models import Alert, DetectionRule


class DetectionRuleSerializer(serializers.ModelSerializer):
    service = serializers.SlugRelatedField(slug_field="slug", queryset=Service.objects.all(), required=False, allow_null=True)
    firing = serializers.IntegerField(read_only=True, required=False)

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


class AlertSerializer(serializers.ModelSerializer):
    rule = serializers.SlugRelatedField(slug_field="name", read_only=True)
    source = serializers.SlugRelatedField(slug_field="name", read_only=True)
    service = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    incident = serializers.SerializerMethodField()

    class Meta:
        model = Alert
        fields = ["id", "fingerprint", "name", "rule", "source", "service", "severity", "labels", "annotations",
                  "state", "value", "active_since", "firing_since", "last_active_at", "resolved_at", "incident",
                  "received_count", "updated_at"]
        read_only_fields = fields

    def get_incident(self, obj) -> str | None:
        return f"INC-{obj.incident_id}" if obj.incident_id else None
