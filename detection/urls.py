from django.conf import settings
from django.urls import path

from . import views

app_name = "detection"
urlpatterns = [
    path("", views.detection_status, name="status"),
    path("regions/<slug:region>/", views.detection_region, name="region"),
]
if settings.DEMO_ENABLED:  # the fire drill injects faults into the demo workload: not mounted without it
    urlpatterns += [
        path("fire-drill/", views.fire_drill, name="fire-drill"),
        path("fire-drill/recover/", views.recover_all, name="recover-all"),
    ]
