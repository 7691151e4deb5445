"""Forms of the control room pages: list filters, comments and tasks (writes go to incidents.services)."""
from __future__ import annotations

from django import forms

from .models import Service, Severity, Status

ACTIVE = "active"
ALL = "all"


class IncidentFilterForm(forms.Form):
    status = forms.ChoiceField(
        required=False,
        choices=[(ACTIVE, "Active"), (ALL, "All")] + list(Status.choices),
    )
    severity = forms.ChoiceField(required=False, choices=[("", "Any severity")] + list(Severity.choices))
    service = forms.ModelChoiceField(
        required=False, queryset=Service.objects.order_by("slug"), to_field_name="slug", empty_label="Any service"
    )

    def filters(self) -> dict:
        """Cleaned filters for `selectors.control_room_incidents`; invalid values fall back to the defaults."""
        if not self.is_valid():
            return {"status": ACTIVE, "severity": "", "service": None}
        data = self.cleaned_data
        return {"status": data["status"] or ACTIVE, "severity": data["severity"], "service": data["service"]}


class CommentForm(forms.Form):
    message = forms.CharField(max_length=10_000, widget=forms.Textarea(attrs={"rows": 2}))


class TaskForm(forms.Form):
    title = forms.CharField(max_length=300)
