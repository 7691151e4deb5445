from django.contrib import admin

from .models import Incident, Service, Task, TimelineEvent


@admin.register(Service)
class ServiceAdmin(admin.ModelAdmin):
    list_display = ("slug", "name", "owner_team", "tier")
    list_filter = ("tier", "owner_team")
    search_fields = ("slug", "name", "owner_team")
    filter_horizontal = ("depends_on",)


class TimelineInline(admin.TabularInline):
    """The timeline is append-only: shown, never edited or deleted here."""

    model = TimelineEvent
    extra = 0
    can_delete = False
    fields = ("occurred_at", "kind", "actor", "message")
    readonly_fields = fields
    ordering = ("occurred_at",)

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


class TaskInline(admin.TabularInline):
    model = Task
    extra = 0
    fields = ("title", "owner", "done", "due_at")


@admin.register(Incident)
class IncidentAdmin(admin.ModelAdmin):
    """Status changes go through the control room or the API (they write the timeline and events);
    here the status and lifecycle timestamps are read-only."""

    list_display = ("id", "title", "severity", "status", "source", "primary_service", "started_at")
    list_filter = ("status", "severity", "source", "primary_service")
    search_fields = ("title", "summary", "fingerprint")
    date_hierarchy = "started_at"
    readonly_fields = (
        "status", "source", "fingerprint", "detected_at", "acknowledged_at", "mitigated_at", "resolved_at",
        "reopened_count", "created_at", "updated_at",
    )
    autocomplete_fields = ("primary_service", "affected_services")
    inlines = (TaskInline, TimelineInline)

    def has_delete_permission(self, request, obj=None):
        return False  # the system of record keeps every incident for the review


@admin.register(Task)
class TaskAdmin(admin.ModelAdmin):
    list_display = ("title", "incident", "owner", "done", "due_at")
    list_filter = ("done",)
    search_fields = ("title", "incident__title")
    autocomplete_fields = ("incident",)
