"""WebSocket delivery of live events to authenticated clients with at least the viewer role.

Protocol (JSON both ways). The client's first message is `{"type": "hello", "cursor": "<cursor>"}`
with the cursor its page was rendered with (`<body data-cursor>`, or "" for none); the consumer,
already subscribed, answers with `live.catchup` (the events after the cursor) or `live.resync`
(refresh everything), see `incidents.stream.catch_up`. Then each event arrives as
`{"event", "data", "cursor"}`; `{"type": "ping"}` is answered with `{"event": "pong"}`.
"""
from __future__ import annotations

from channels.consumer import get_handler_name
from channels.exceptions import StopConsumer
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from reliability_studio.access import Role, has_role
from reliability_studio.websocket import off_thread

from . import stream
from .events import ALL_INCIDENTS_GROUP, incident_group
from .models import Incident


def _refusal(user, incident_id) -> int | None:
    """The close code that refuses this handshake (4403: below viewer, 4404: no such incident)."""
    if not has_role(user, Role.VIEWER):
        return 4403
    if incident_id is not None and not Incident.objects.filter(pk=incident_id).exists():
        return 4404
    return None


class IncidentEventsConsumer(AsyncJsonWebsocketConsumer):
    """`/ws/incidents/` streams every event; `/ws/incidents/<id>/` only that incident's."""

    async def dispatch(self, message):
        # Channels' own dispatch first runs close_old_connections in the thread-sensitive thread,
        # where Django renders every synchronous view: each handshake and each event waited behind
        # page renders. This consumer touches the database only through off_thread, which closes
        # its thread's stale connections itself, so it dispatches directly.
        handler = getattr(self, get_handler_name(message), None)
        if handler is None:
            raise ValueError(f"No handler for message type {message['type']}")
        await handler(message)

    async def connect(self):
        incident_id = self.incident_id = self.scope["url_route"]["kwargs"].get("incident_id")
        self.greeted = False
        # One lookup in the thread pool, not behind page renders (reliability_studio.websocket).
        refusal = await off_thread(_refusal)(self.scope.get("user"), incident_id)
        if refusal:
            await self.close(code=refusal)  # before accept: the handshake is refused
            return
        if incident_id is not None:
            self.group = incident_group(incident_id)
        else:
            self.group = ALL_INCIDENTS_GROUP
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()

    async def websocket_disconnect(self, message):
        # As dispatch: without Channels' close_old_connections in the view thread.
        await self.disconnect(message["code"])
        raise StopConsumer()

    async def disconnect(self, code):
        group = getattr(self, "group", None)
        if group:
            await self.channel_layer.group_discard(group, self.channel_name)

    async def receive_json(self, content, **kwargs):
        # Clients say hello once, then only ping (to check the connection without an event).
        if not isinstance(content, dict):
            return
        if content.get("type") == "ping":
            await self.send_json({"event": "pong"})
        elif content.get("type") == "hello" and not self.greeted:
            # Subscribed in connect(), so whatever the ring does not hold yet comes as a group message.
            self.greeted = True
            reply = await off_thread(stream.catch_up)(
                content.get("cursor"), incident_id=self.incident_id)
            await self.send_json(reply)

    async def rs_event(self, message):
        await self.send_json({"event": message["event"], "data": message["data"], "cursor": message.get("cursor", "")})
