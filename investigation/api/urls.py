"""Investigation API routes (incidents/<key>/investigation/, changes/)."""
from django.urls import path, re_path

from .views import ChangeListView, HypothesisDecisionView, InvestigationView

KEY = r"(?P<key>[^/]+)"  # any text: a bad key gets the JSON 404, not an HTML page

urlpatterns = [
    re_path(rf"^incidents/{KEY}/investigation/$", InvestigationView.as_view(), name="investigation"),
    re_path(rf"^incidents/{KEY}/investigation/hypotheses/(?P<pk>\d+)/$", HypothesisDecisionView.as_view(),
            name="investigation-hypothesis"),
    path("changes/", ChangeListView.as_view(), name="change-list"),
]
