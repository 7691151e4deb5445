from rest_framework import serializers

from ..models import Action, AuditRecord, Runbook


class RunbookSerializer(serializers.ModelSerializer):
    class Meta:
        model = Runbook
        fields = ["id", "name", "title", "description", "enabled", "match", "steps", "source_file", "source_line",
                  "updated_at"]
        read_only_fields = fields


class ActionSerializer(serializers.ModelSerializer):
    requested_by = serializers.SlugRelatedField(slug_field="username", read_only=True)
    approved_by = serializers.SlugRelatedField(slug_field="username", read_only=True)

    class Meta:
        model = Action
        fields = ["id", "incident", "runbook_name", "step_index", "step_name", "round", "kind", "target", "params",
                  "dry_run", "status", "requires_approval", "automatic", "hypothesis", "confidence", "reason",
                  "requested_by", "approved_by", "result", "error", "verification", "verification_detail",
                  "verify_seconds", "created_at", "requested_at", "approved_at", "started_at", "finished_at",
                  "verify_until", "verified_at"]
        read_only_fields = fields


class ActionCreateSerializer(serializers.Serializer):
    incident = serializers.IntegerField(min_value=1)
    runbook = serializers.SlugField(max_length=100)
    step = serializers.IntegerField(min_value=0, default=0)
    service = serializers.SlugField(max_length=63, required=False)


class NoteSerializer(serializers.Serializer):
    note = serializers.CharField(max_length=1000, required=False, allow_blank=True, default="")


class AuditRecordSerializer(serializers.ModelSerializer):
    class Meta:
        model = AuditRecord
        fields = ["id", "at", "actor", "actor_id", "event", "action_id", "incident_id", "kind", "target",
                  "parameters", "dry_run", "result", "message"]
        read_only_fields = fields


class KillSwitchSerializer(serializers.Serializer):
    engaged = serializers.BooleanField()
    reason = serializers.CharField(max_length=500, required=False, allow_blank=True, default="")
