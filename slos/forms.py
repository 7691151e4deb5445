"""The control-room SLO form (admins): the same validation as the API and the admin."""
from __future__ import annotations

from django import forms
from django.core.exceptions import ValidationError

from incidents.models import Service

from . import services
from .models import SLO

FIELDS = ["service", "name", "sli_kind", "selector", "metric", "error_matcher", "latency_threshold_seconds",
          "good_query", "total_query", "objective", "window_days", "owner", "description", "labels",
          "severity_policy", "enabled"]


class SLOForm(forms.ModelForm):
    service = forms.ModelChoiceField(queryset=Service.objects.order_by("slug"), to_field_name="slug", empty_label=None)

    class Meta:
        model = SLO
        fields = FIELDS
        widgets = {"description": forms.Textarea(attrs={"rows": 2}),
                   "good_query": forms.Textarea(attrs={"rows": 2}), "total_query": forms.Textarea(attrs={"rows": 2})}

    def _post_clean(self):
        # The instance holds the submitted values only after ModelForm's own _post_clean.
        super()._post_clean()
        if not self.errors:
            try:
                services.check_slo_source(self.instance)  # Prometheus's own message if it refuses a query
            except ValidationError as exc:
                self.add_error(None, exc)
