from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError

from . import services
from .models import Alert, AlertSource, DetectionRule


class DetectionRuleForm(forms.ModelForm):
    class Meta:
        model = DetectionRule
        fields = "__all__"

    def _post_clean(self):
        # The instance holds the submitted values only after ModelForm's own _post_clean.
        super()._post_clean()
        if not self.errors:
            try:
                services.check_rule_source(self.instance)  # the source's own error message if refused
            except ValidationError as exc:
                self.add_error(None, exc)


@admin.register(DetectionRule)
class DetectionRuleAdmin(admin.ModelAdmin):
    """Rules are written by detection.services (events after commit; disabling or deleting a rule
    resolves its alerts first), from the form, the delete views and the actions alike."""

    form = DetectionRuleForm
    actions = ["enable_selected", "disable_selected"]
    list_display = ("name", "kind", "service", "severity", "enabled", "health", "last_value", "last_evaluated_at")
    list_filter = ("kind", "enabled", "health", "severity", "service")
    search_fields = ("name", "query", "description")
    readonly_fields = ("health", "last_error", "last_value", "last_evaluated_at", "last_duration_ms", "next_evaluation_at")
    fieldsets = (
        (None, {"fields": ("name", "kind", "service", "severity", "enabled", "description", "runbook_url", "labels")}),
        ("Query", {"fields": ("query", "comparator", "threshold", "anomaly_method", "baseline_window_seconds")}),
        ("Kubernetes", {"fields": ("kubernetes_condition", "kubernetes_namespace", "kubernetes_selector")}),
        ("Timing", {"fields": ("for_seconds", "recovery_hold_seconds", "evaluation_interval_seconds")}),
        ("Status", {"fields": readonly_fields}),
    )

    def save_model(self, request, obj, form, change):
        fields = {f: getattr(obj, f) for f in services.RULE_FIELDS}
        # The form has already asked the source (DetectionRuleForm._post_clean): not twice.
        if change:
            services.update_rule(rule=obj, check_source=False, user=request.user, **fields)
        else:
            saved = services.create_rule(check_source=False, user=request.user, **fields)
            obj.pk = saved.pk
            obj._state.adding = False
            obj._state.db = saved._state.db

    def delete_model(self, request, obj):
        services.delete_rule(rule=obj, user=request.user)

    def delete_queryset(self, request, queryset):
        for rule in queryset:
            services.delete_rule(rule=rule, user=request.user)

    @admin.action(description="Enable selected rules", permissions=["change"])
    def enable_selected(self, request, queryset):
        for rule in queryset.filter(enabled=False):
            services.enable_rule(rule=rule, user=request.user)

    @admin.action(description="Disable selected rules (their alerts resolve)", permissions=["change"])
    def disable_selected(self, request, queryset):
        for rule in queryset.filter(enabled=True):
            services.disable_rule(rule=rule, user=request.user)


@admin.register(AlertSource)
class AlertSourceAdmin(admin.ModelAdmin):
    """Creating a source (or the 'new token' action) shows its bearer token once; only a hash is kept."""

    list_display = ("name", "kind", "enabled", "token_hint", "default_severity", "created_at")
    list_filter = ("kind", "enabled")
    readonly_fields = ("token_hint",)
    actions = ["rotate_token"]

    def save_model(self, request, obj, form, change):
        if not change:
            token = obj.set_new_token()
            messages.warning(request, f"Bearer token for {obj.name} (shown once): {token}")
        super().save_model(request, obj, form, change)

    # permissions=["change"]: the action is offered to, and runs for, only users who may change
    # sources (the admin role); Django refuses it for any other staff user and rotates nothing.
    @admin.action(description="Generate a new token (the old one stops working)", permissions=["change"])
    def rotate_token(self, request, queryset):
        for source in queryset:
            token = source.set_new_token()
            source.save(update_fields=["token_hash", "token_hint"])
            messages.warning(request, f"New bearer token for {source.name} (shown once): {token}")


@admin.register(Alert)
class AlertAdmin(admin.ModelAdmin):
    list_display = ("name", "service", "severity", "state", "value", "incident", "updated_at")
    list_filter = ("state", "severity", "rule", "source")
    search_fields = ("name", "fingerprint")

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in self.model._meta.fields]

    def has_add_permission(self, request):
        return False
