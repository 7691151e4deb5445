from django.urls import path

from . import views

app_name = "incidents"
urlpatterns = [
    path("", views.incident_list, name="list"),
    path("incidents/<int:pk>/", views.incident_detail, name="detail"),
    path("incidents/<int:pk>/review/", views.incident_review, name="review"),
    path("incidents/<int:pk>/regions/<slug:region>/", views.incident_region, name="region"),
    path("incidents/<int:pk>/actions/<slug:action>/", views.incident_action, name="action"),
    path("incidents/<int:pk>/comments/", views.add_comment, name="comment"),
    path("incidents/<int:pk>/tasks/", views.add_task, name="add-task"),
    path("incidents/<int:pk>/tasks/<int:task_id>/toggle/", views.toggle_task, name="toggle-task"),
    path("services/", views.service_list, name="services"),
]
