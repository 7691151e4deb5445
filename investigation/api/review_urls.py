"""Post-incident review API routes (incidents/<key>/review/)."""
from django.urls import re_path

from .review import ReviewView

KEY = r"(?P<key>[^/]+)"  # any text: a bad key gets the JSON 404, not an HTML page

urlpatterns = [
    re_path(rf"^incidents/{KEY}/review/$", ReviewView.as_view(), name="incident-review"),
]
