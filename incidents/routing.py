from django.urls import path

from .consumers import IncidentEventsConsumer

websocket_urlpatterns = [
    path("ws/incidents/", IncidentEventsConsumer.as_asgi()),
    path("ws/incidents/<int:incident_id>/", IncidentEventsConsumer.as_asgi()),
]
