from django.contrib import admin

from .forms import SLOForm
from .models import SLO, IncidentBudgetImpact, SLOSnapshot

STATE = ("status", "sli", "good_events", "total_events", "budget_remaining", "burn_rates", "alert_rows",
         "forecast_seconds", "stale", "last_error", "computed_at", "attempted_at")


class AdminSLOForm(SLOForm):
    class Meta(SLOForm.Meta):
        fields = ["slug", *SLOForm.Meta.fields]


@admin.register(SLO)
class SLOAdmin(admin.ModelAdmin):
    """Saving validates the objective, the window and the queries (against Prometheus)."""

    form = AdminSLOForm
    list_display = ("name", "service", "sli_kind", "objective", "window_days", "status", "budget_remaining", "stale",
                    "computed_at")
    list_filter = ("sli_kind", "status", "window_days", "enabled", "service")
    search_fields = ("name", "slug", "description", "owner")
    readonly_fields = STATE
    fieldsets = (
        (None, {"fields": ("service", "name", "slug", "enabled", "owner", "description", "labels")}),
        ("SLI", {"fields": ("sli_kind", "selector", "metric", "error_matcher", "latency_threshold_seconds",
                            "good_query", "total_query")}),
        ("Objective", {"fields": ("objective", "window_days", "severity_policy")}),
        ("Computed", {"fields": STATE}),
    )


@admin.register(IncidentBudgetImpact)
class IncidentBudgetImpactAdmin(admin.ModelAdmin):
    list_display = ("incident", "slo", "consumed", "consumed_minutes", "final", "start", "end")
    list_filter = ("final", "slo")

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in self.model._meta.fields]

    def has_add_permission(self, request):
        return False


@admin.register(SLOSnapshot)
class SLOSnapshotAdmin(admin.ModelAdmin):
    list_display = ("slo", "at", "status", "sli", "budget_remaining")
    list_filter = ("slo",)

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in self.model._meta.fields]

    def has_add_permission(self, request):
        return False
