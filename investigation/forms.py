"""Forms of the investigation pages: a decision on a hypothesis, an edit of a review section."""
from __future__ import annotations

from django import forms

from .models import HypothesisStatus
from .review import MAX_SECTION_CHARS, SECTIONS


class DecisionForm(forms.Form):
    status = forms.ChoiceField(choices=[(HypothesisStatus.CONFIRMED, "Confirm"), (HypothesisStatus.REJECTED, "Reject")])
    note = forms.CharField(required=False, max_length=1_000)


class ReviewSectionForm(forms.Form):
    section = forms.ChoiceField(choices=SECTIONS)
    text = forms.CharField(required=False, max_length=MAX_SECTION_CHARS, strip=False)
    # "Restore the generated text": drops the edit instead of storing one.
    restore = forms.BooleanField(required=False)
