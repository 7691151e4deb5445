"""Control-room pages of remediation (the region itself is served by incidents:region)."""
from django.urls import path

from . import views

app_name = "remediation"
urlpatterns = [
    path("actions/<int:pk>/<str:verb>/", views.action_verb, name="action"),
    path("audit/", views.audit_log, name="audit"),
]
