"""Admin for notifications: destinations (write-only secret, test button), routes, quiet hours,
escalation policies with their steps, and the read-only delivery log and escalation schedule."""
from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.shortcuts import get_object_or_404, redirect
from django.urls import path, reverse

from . import services
from .models import (Delivery, Destination, EscalationPolicy, EscalationStep, QuietHours, Route,
                     ScheduledEscalation)


class DestinationForm(forms.ModelForm):
    secret = forms.CharField(required=False, widget=forms.PasswordInput(render_value=False),
                             help_text="Write-only. Leave blank to keep the current secret. Slack/Teams: the webhook "
                                       "URL; PagerDuty: the integration key; webhook: the HMAC key. "
                                       "Prefer secret_env in production.")

    class Meta:
        model = Destination
        fields = ["name", "kind", "enabled", "url", "recipients", "secret", "secret_env"]

    def _post_clean(self):
        # A blank secret keeps the stored one (the field never shows it back).
        if not self.cleaned_data.get("secret") and self.instance.pk:
            self.cleaned_data["secret"] = Destination.objects.get(pk=self.instance.pk).secret
        super()._post_clean()


@admin.register(Destination)
class DestinationAdmin(admin.ModelAdmin):
    form = DestinationForm
    list_display = ["name", "kind", "enabled", "secret_hint", "updated_at"]
    list_filter = ["kind", "enabled"]
    search_fields = ["name"]
    readonly_fields = ["secret_hint"]
    actions = ["send_test"]
    change_form_template = "notifications/admin/destination_change_form.html"

    @admin.action(description="Send a test notification")
    def send_test(self, request, queryset):
        for destination in queryset:
            self._report(request, destination, services.send_test(destination=destination))

    def _report(self, request, destination, result):
        if result["ok"]:
            self.message_user(request, f"Test sent to {destination.name} (HTTP {result['status_code'] or 'OK'}).",
                              messages.SUCCESS)
        else:
            self.message_user(request, f"Test to {destination.name} failed: {result['error']}", messages.ERROR)

    def get_urls(self):
        return [path("<int:pk>/test/", self.admin_site.admin_view(self.test_view), name="notifications_destination_test"),
                *super().get_urls()]

    def test_view(self, request, pk):
        destination = get_object_or_404(Destination, pk=pk)
        if request.method != "POST" or not self.has_change_permission(request, destination):
            return redirect(reverse("admin:notifications_destination_change", args=[pk]))
        try:
            self._report(request, destination, services.send_test(destination=destination))
        except Exception as exc:  # a ValidationError: the saved configuration is no longer valid
            self.message_user(request, f"Test to {destination.name} not sent: {exc}", messages.ERROR)
        return redirect(reverse("admin:notifications_destination_change", args=[pk]))


@admin.register(Route)
class RouteAdmin(admin.ModelAdmin):
    list_display = ["name", "position", "enabled", "is_default", "stop"]
    list_editable = ["position", "enabled"]
    filter_horizontal = ["services", "destinations"]


@admin.register(QuietHours)
class QuietHoursAdmin(admin.ModelAdmin):
    list_display = ["team", "start", "end", "timezone", "max_severity"]


class EscalationStepInline(admin.TabularInline):
    model = EscalationStep
    extra = 1


@admin.register(EscalationPolicy)
class EscalationPolicyAdmin(admin.ModelAdmin):
    list_display = ["name", "team", "enabled"]
    inlines = [EscalationStepInline]


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(Delivery)
class DeliveryAdmin(ReadOnlyAdmin):
    list_display = ["incident", "destination_name", "destination_kind", "event_key", "status", "attempts",
                    "delivered_at", "last_error"]
    list_filter = ["status", "destination_kind", "event"]
    search_fields = ["destination_name", "event_key"]


@admin.register(ScheduledEscalation)
class ScheduledEscalationAdmin(ReadOnlyAdmin):
    list_display = ["incident", "level", "due_at", "status", "reason"]
    list_filter = ["status"]
