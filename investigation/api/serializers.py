"""Investigation API shapes: runs with their steps and evidence, hypotheses, decisions, changes."""
from __future__ import annotations

from rest_framework import serializers

from incidents.models import Service

from ..models import Change, ChangeKind, Evidence, Hypothesis, InvestigationRun


class EvidenceSerializer(serializers.ModelSerializer):
    class Meta:
        model = Evidence
        fields = ["id", "kind", "source", "service", "status", "query", "explore_url", "snapshot", "snapshot_bytes",
                  "score", "anomaly_start", "finding", "created_at"]


class RunSummarySerializer(serializers.ModelSerializer):
    class Meta:
        model = InvestigationRun
        fields = ["id", "trigger", "trigger_key", "status", "created_at", "started_at", "finished_at"]


class RunSerializer(serializers.ModelSerializer):
    evidence = EvidenceSerializer(many=True, read_only=True)
    requested_by = serializers.SlugRelatedField(slug_field="username", read_only=True)
    duration_seconds = serializers.FloatField(read_only=True)

    class Meta:
        model = InvestigationRun
        fields = ["id", "incident", "trigger", "trigger_key", "status", "steps", "scope", "window_start", "window_end",
                  "baseline_start", "baseline_end", "ranking", "summary", "impact", "error", "attempts",
                  "requested_by", "created_at", "started_at", "finished_at", "duration_seconds", "evidence"]


class HypothesisSerializer(serializers.ModelSerializer):
    decided_by = serializers.SlugRelatedField(slug_field="username", read_only=True)
    evidence = serializers.PrimaryKeyRelatedField(many=True, read_only=True)

    class Meta:
        model = Hypothesis
        fields = ["id", "kind", "service", "services", "title", "description", "confidence", "score", "rank", "status",
                  "decided_by", "decided_at", "decision_note", "evidence", "next_step", "run", "created_at",
                  "updated_at"]


class DecisionSerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=["confirmed", "rejected"])
    note = serializers.CharField(required=False, allow_blank=True, max_length=1000, default="")


class ChangeSerializer(serializers.ModelSerializer):
    service = serializers.SlugRelatedField(slug_field="slug", queryset=Service.objects.all())
    kind = serializers.ChoiceField(choices=ChangeKind.choices, default=ChangeKind.DEPLOY)
    recorded_by = serializers.SlugRelatedField(slug_field="username", read_only=True)
    external_id = serializers.CharField(required=False, allow_null=True, allow_blank=True, max_length=200)

    class Meta:
        model = Change
        fields = ["id", "service", "kind", "source", "version", "description", "author", "url", "occurred_at",
                  "external_id", "recorded_by", "created_at"]
        read_only_fields = ["source", "recorded_by", "created_at"]
        extra_kwargs = {"occurred_at": {"required": False}}
        # The same external_id again is not an error but the same change (services.record_change).
        validators: list = []
