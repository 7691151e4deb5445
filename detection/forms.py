"""The fire-drill form of the detection page: one fault for one catalog service."""
from __future__ import annotations

from django import forms

from incidents.models import Service

from .chaos import ChaosError, parse_duration_ms, validate_error_rate
from .firedrill import Fault

FAULT_KINDS = [("error", "Error rate"), ("latency", "Added latency"), ("crash", "Crash")]


class FireDrillForm(forms.Form):
    service = forms.ModelChoiceField(queryset=Service.objects.order_by("slug"), to_field_name="slug",
                                     empty_label=None)
    kind = forms.ChoiceField(choices=FAULT_KINDS)
    value = forms.CharField(
        required=False, max_length=20,
        help_text="error: a rate in (0, 1], e.g. 0.3 · latency: 800ms, 1.5s or 2m · crash: nothing",
    )

    def clean(self):
        data = super().clean()
        kind, raw = data.get("kind"), (data.get("value") or "").strip()
        if kind == "error":
            try:
                data["amount"] = validate_error_rate(float(raw))
            except ValueError:
                self.add_error("value", "an error fault needs a rate in (0, 1], e.g. 0.3")
            except ChaosError as exc:
                self.add_error("value", str(exc))
        elif kind == "latency":
            try:
                data["amount"] = parse_duration_ms(raw)
            except ChaosError as exc:
                self.add_error("value", str(exc))
        else:
            data["amount"] = 0.0
        return data

    def fault(self) -> Fault:
        """The fault to inject (call after is_valid())."""
        data = self.cleaned_data
        return Fault(data["kind"], data["service"].slug, data["amount"])
