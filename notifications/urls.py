from django.urls import path

from . import views

app_name = "notifications"
urlpatterns = [
    path("ack/<str:token>/", views.acknowledge, name="ack"),
]
