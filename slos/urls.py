from django.urls import path

from . import views

app_name = "slos"

urlpatterns = [
    path("", views.slo_list, name="list"),
    path("regions/list/", views.slo_list_region, name="list-region"),
    path("new/", views.slo_edit, name="new"),
    path("<int:pk>/", views.slo_detail, name="detail"),
    path("<int:pk>/edit/", views.slo_edit, name="edit"),
    path("<int:pk>/regions/<slug:region>/", views.slo_region, name="region"),
]
