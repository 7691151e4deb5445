from __future__ import annotations

from django.core.exceptions import ValidationError as DjangoValidationError
from rest_framework import serializers

from incidents.models import Service

from ..models import (Delivery, Destination, EscalationPolicy, EscalationStep, QuietHours, Route,
                      ScheduledEscalation)


def full_clean_or_400(instance, exclude=()) -> None:
    try:
        instance.full_clean(exclude=list(exclude))
    except DjangoValidationError as exc:
        raise serializers.ValidationError(exc.message_dict if hasattr(exc, "error_dict") else exc.messages) from None


class DestinationSerializer(serializers.ModelSerializer):
    """The secret is write-only: reads show `secret_hint` (masked) instead."""

    secret = serializers.CharField(write_only=True, required=False, allow_blank=True, max_length=2000,
                                   style={"input_type": "password"})
    secret_hint = serializers.CharField(read_only=True)
    kind = serializers.CharField(max_length=16)  # validated by the model, which names the known kinds

    class Meta:
        model = Destination
        fields = ["id", "name", "kind", "enabled", "url", "recipients", "secret", "secret_env", "secret_hint",
                  "created_at", "updated_at"]
        read_only_fields = ["created_at", "updated_at"]


class RouteSerializer(serializers.ModelSerializer):
    services = serializers.SlugRelatedField(slug_field="slug", many=True, required=False, queryset=Service.objects.all())
    destinations = serializers.PrimaryKeyRelatedField(many=True, queryset=Destination.objects.all())

    class Meta:
        model = Route
        fields = ["id", "name", "position", "enabled", "is_default", "services", "teams", "severities", "labels",
                  "destinations", "stop"]

    def validate(self, attrs):
        fields = {k: v for k, v in attrs.items() if k not in ("services", "destinations")}
        instance = Route(**{**({f.name: getattr(self.instance, f.name) for f in Route._meta.concrete_fields}
                               if self.instance else {}), **fields})
        full_clean_or_400(instance, exclude=["id"] if not self.instance else ())
        if not attrs.get("destinations", self.instance.destinations.all() if self.instance else []):
            raise serializers.ValidationError({"destinations": ["at least one destination"]})
        return attrs


class QuietHoursSerializer(serializers.ModelSerializer):
    class Meta:
        model = QuietHours
        fields = ["id", "team", "start", "end", "timezone", "max_severity"]

    def validate(self, attrs):
        current = {f.name: getattr(self.instance, f.name) for f in QuietHours._meta.concrete_fields} if self.instance else {}
        full_clean_or_400(QuietHours(**{**current, **attrs}), exclude=["id", "team"])
        return attrs


class EscalationStepSerializer(serializers.ModelSerializer):
    destinations = serializers.PrimaryKeyRelatedField(many=True, queryset=Destination.objects.all())

    class Meta:
        model = EscalationStep
        fields = ["position", "delay_seconds", "destinations"]


class EscalationPolicySerializer(serializers.ModelSerializer):
    """A policy with its steps; writing `steps` replaces them all."""

    steps = EscalationStepSerializer(many=True)

    class Meta:
        model = EscalationPolicy
        fields = ["id", "name", "team", "enabled", "steps"]

    def validate_steps(self, steps):
        positions = [s["position"] for s in steps]
        if len(set(positions)) != len(positions):
            raise serializers.ValidationError("step positions must be unique")
        for step in steps:
            if step["delay_seconds"] < 1:
                raise serializers.ValidationError("every delay must be at least 1 second")
            if not step["destinations"]:
                raise serializers.ValidationError("every step needs at least one destination")
        return steps

    def _write_steps(self, policy, steps):
        policy.steps.all().delete()
        for step in steps:
            destinations = step.pop("destinations")
            EscalationStep.objects.create(policy=policy, **step).destinations.set(destinations)

    def create(self, validated_data):
        steps = validated_data.pop("steps")
        policy = EscalationPolicy.objects.create(**validated_data)
        self._write_steps(policy, steps)
        return policy

    def update(self, instance, validated_data):
        steps = validated_data.pop("steps", None)
        for key, value in validated_data.items():
            setattr(instance, key, value)
        instance.save()
        if steps is not None:
            self._write_steps(instance, steps)
        return instance


class DeliverySerializer(serializers.ModelSerializer):
    incident_key = serializers.SerializerMethodField()
    history = serializers.SerializerMethodField()

    class Meta:
        model = Delivery
        fields = ["id", "incident", "incident_key", "destination", "destination_name", "destination_kind", "event",
                  "event_key", "level", "status", "attempts", "next_attempt_at", "delivered_at", "response_code",
                  "last_error", "history", "created_at"]

    def get_incident_key(self, obj) -> str:
        return f"INC-{obj.incident_id}"

    def get_history(self, obj) -> list:
        return obj.detail.get("history", [])


class ScheduledEscalationSerializer(serializers.ModelSerializer):
    class Meta:
        model = ScheduledEscalation
        fields = ["id", "incident", "level", "due_at", "status", "finished_at", "reason"]


class TestResultSerializer(serializers.Serializer):
    ok = serializers.BooleanField()
    status_code = serializers.IntegerField(allow_null=True)
    error = serializers.CharField(required=False)
