import django_filters
from django.db.models import Q

from ..models import Incident, Severity, Status


class IncidentFilter(django_filters.FilterSet):
    # distinct=False: these filter the incident row itself, so no join can duplicate it.
    status = django_filters.MultipleChoiceFilter(choices=Status.choices, distinct=False)
    severity = django_filters.MultipleChoiceFilter(choices=Severity.choices, distinct=False)
    service = django_filters.CharFilter(method="filter_service", help_text="service slug (primary or affected)")
    active = django_filters.BooleanFilter(method="filter_active", help_text="true: not resolved")
    started_after = django_filters.IsoDateTimeFilter(field_name="started_at", lookup_expr="gte")
    started_before = django_filters.IsoDateTimeFilter(field_name="started_at", lookup_expr="lt")
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
