"""WebSocket delivery of live events to authenticated clients with at least the viewer role."""
from __future__ import annotations

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from reliability_studio.access import Role, has_role

from .events import ALL_INCIDENTS_GROUP, incident_group
from .models import Incident


class IncidentEventsConsumer(AsyncJsonWebsocketConsumer):
    """`/ws/incidents/` streams every event; `/ws/incidents/<id>/` only that incident's."""

    async def connect(self):
        user = self.scope.get("user")
        if not await database_sync_to_async(has_role)(user, Role.VIEWER):
            await self.close(code=4403)  # before accept: the handshake is refused (HTTP 403)
            return
        incident_id = self.scope["url_route"]["kwargs"].get("incident_id")
        if incident_id is not None:
            if not await database_sync_to_async(Incident.objects.filter(pk=incident_id).exists)():
                await self.close(code=4404)
                return
            self.group = incident_group(incident_id)
        else:
            self.group = ALL_INCIDENTS_GROUP
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()

    async def disconnect(self, code):
        group = getattr(self, "group", None)
        if group:
            await self.channel_layer.group_discard(group, self.channel_name)

    async def receive_json(self, content, **kwargs):
        # The stream is one-way; a ping lets clients check the connection without an event.
        if isinstance(content, dict) and content.get("type") == "ping":
            await self.send_json({"event": "pong"})

    async def rs_event(self, message):
        await self.send_json({"event": message["event"], "data": message["data"]})
