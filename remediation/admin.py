"""Admin: runbooks are editable (validated like the YAML files); actions and the audit log are
read-only (the audit log's append-only rule is also enforced by the database); the switchboard
is the kill-switch toggle."""
from django import forms
from django.contrib import admin
from django.utils import timezone

from . import runbooks, services
from .models import Action, AuditRecord, Runbook, Switchboard


class RunbookForm(forms.ModelForm):
    class Meta:
        model = Runbook
        fields = ["name", "title", "description", "enabled", "match", "steps"]

    def clean(self):
        data = super().clean()
        if "match" in data and "steps" in data:
            data["match"], data["steps"] = runbooks.check_json(match=data["match"], steps=data["steps"])
        return data


@admin.register(Runbook)
class RunbookAdmin(admin.ModelAdmin):
    form = RunbookForm
    list_display = ["name", "title", "enabled", "source_file", "updated_at"]
    list_filter = ["enabled"]
    search_fields = ["name", "title"]
    readonly_fields = ["source_file", "source_line", "created_at", "updated_at"]

    def save_model(self, request, obj, form, change):
        if change and obj.source_file:
            obj.source_file = f"{obj.source_file} (edited in the admin {timezone.now():%Y-%m-%d %H:%M})"[:500]
        super().save_model(request, obj, form, change)


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(Action)
class ActionAdmin(ReadOnlyAdmin):
    list_display = ["id", "incident", "kind", "target", "status", "verification", "automatic", "created_at"]
    list_filter = ["status", "verification", "kind", "automatic"]
    search_fields = ["target", "runbook_name"]


@admin.register(AuditRecord)
class AuditRecordAdmin(ReadOnlyAdmin):
    list_display = ["at", "actor", "event", "incident_id", "action_id", "kind", "target", "message"]
    list_filter = ["event", "kind"]
    search_fields = ["actor", "target", "message"]


@admin.register(Switchboard)
class SwitchboardAdmin(admin.ModelAdmin):
    fields = ["kill_switch", "kill_switch_reason", "breaker_reset_at", "changed_by", "changed_at"]
    readonly_fields = ["breaker_reset_at", "changed_by", "changed_at"]
    actions = ["reset_breaker"]

    def has_add_permission(self, request):
        return not Switchboard.objects.exists()

    def has_delete_permission(self, request, obj=None):
        return False

    def save_model(self, request, obj, form, change):
        # Through the service: the change is audited.
        services.set_kill_switch(engaged=obj.kill_switch, reason=obj.kill_switch_reason, user=request.user)

    @admin.action(description="Reset the circuit breaker")
    def reset_breaker(self, request, queryset):
        services.reset_breaker(user=request.user)
        self.message_user(request, "Circuit breaker reset: only failures from now on count.")
