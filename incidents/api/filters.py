from datetime import timezone as dt_timezone

import django_filters
from django import forms
from django.db.models import Q
from django_filters.fields import IsoDateTimeField

from ..models import Incident, Severity, Status


class UTCIsoDateTimeField(IsoDateTimeField):
    """An ISO 8601 time normalised to UTC. Any offset below 24 h is valid ISO 8601, but PostgreSQL
    accepts offsets only up to ±15:59, so the value is converted before it reaches the query."""

    def to_python(self, value):
        parsed = super().to_python(value)
        if parsed is None:
            return None
        try:
            return parsed.astimezone(dt_timezone.utc)
        except OverflowError:
            raise forms.ValidationError("This time is out of range.", code="invalid") from None


class UTCIsoDateTimeFilter(django_filters.IsoDateTimeFilter):
    field_class = UTCIsoDateTimeField


class IncidentFilter(django_filters.FilterSet):
    # distinct=False: these filter the incident row itself, so no join can duplicate it.
    status = django_filters.MultipleChoiceFilter(choices=Status.choices, distinct=False)
    severity = django_filters.MultipleChoiceFilter(choices=Severity.choices, distinct=False)
    service = django_filters.CharFilter(method="filter_service", help_text="service slug (primary or affected)")
    active = django_filters.BooleanFilter(method="filter_active", help_text="true: not resolved")
    started_after = UTCIsoDateTimeFilter(field_name="started_at", lookup_expr="gte")
    started_before = UTCIsoDateTimeFilter(field_name="started_at", lookup_expr="lt")
    q = django_filters.CharFilter(method="filter_text", help_text="full-text search on title and summary")

    class Meta:
        model = Incident
        fields = ["status", "severity", "source"]

    def filter_service(self, queryset, name, value):
        return queryset.filter(Q(primary_service__slug=value) | Q(affected_services__slug=value)).distinct()

    def filter_active(self, queryset, name, value):
        return queryset.active() if value else queryset.filter(status=Status.RESOLVED)

    def filter_text(self, queryset, name, value):
        return queryset.search(value) if value.strip() else queryset
