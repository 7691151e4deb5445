from django.urls import path

from . import views

app_name = "detection"
urlpatterns = [
    path("", views.detection_status, name="status"),
    path("regions/<slug:region>/", views.detection_region, name="region"),
    path("fire-drill/", views.fire_drill, name="fire-drill"),
    path("fire-drill/recover/", views.recover_all, name="recover-all"),
]
