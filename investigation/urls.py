"""Control-room pages of the investigation (actions on the incident page, the review's edits and export).
The panels themselves are regions of the incident page (investigation/panels.py)."""
from django.urls import path

from . import views

app_name = "investigation"
urlpatterns = [
    path("incidents/<int:pk>/rerun/", views.rerun_investigation, name="rerun"),
    path("incidents/<int:pk>/hypotheses/<int:hypothesis_id>/decide/", views.decide_hypothesis, name="decide"),
    path("incidents/<int:pk>/review/sections/", views.edit_review_section, name="review-edit"),
    path("incidents/<int:pk>/review/regenerate/", views.regenerate_review, name="review-regenerate"),
    path("incidents/<int:pk>/review.md", views.review_markdown, name="review-markdown"),
]
