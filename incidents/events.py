"""The one publishing helper for live events.

Every state change calls `publish()` inside its transaction; the message goes to the Channels
groups only after the transaction commits, so no client ever sees a change that was rolled back.
Before it is sent, each event is numbered and kept in `incidents.stream` (its `cursor` travels
with it), so a page that subscribes late catches up on what it missed.
"""
from __future__ import annotations

import logging
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.core.serializers.json import DjangoJSONEncoder
from django.db import transaction
import json

from . import stream

log = logging.getLogger(__name__)

ALL_INCIDENTS_GROUP = "incidents.all"
EVENT_TYPES = frozenset(
    {
        "incident.created",
        "incident.updated",
        "timeline.appended",
        "task.updated",
        "investigation.progress",
        "investigation.updated",
        "slo.updated",
        "remediation.updated",
        "detection.updated",
        "notification.sent",
    }
)


def incident_group(incident_id: int) -> str:
    return f"incidents.{incident_id}"


def publish(event_type: str, data: dict[str, Any], *, incident_id: int | None = None) -> None:
    """Queue one typed event for delivery after the current transaction commits."""
    if event_type not in EVENT_TYPES:
        raise ValueError(f"unknown event type {event_type!r}")
    # Serialise now (datetimes, decimals) so what is sent is what the caller saw.
    payload = json.loads(json.dumps(data, cls=DjangoJSONEncoder))
    groups = [ALL_INCIDENTS_GROUP] + ([incident_group(incident_id)] if incident_id is not None else [])
    message = {"type": "rs.event", "event": event_type, "data": payload}
    transaction.on_commit(lambda: _send(groups, message, incident_id), robust=True)


def _send(groups: list[str], message: dict, incident_id: int | None) -> None:
    layer = get_channel_layer()
    if layer is None:
        return
    try:
        # Into the ring first, then to the groups: a subscriber that reads the ring before this
        # append is already in the group when the message is sent (incidents.stream).
        message = {**message, "cursor": stream.append(message["event"], message["data"], incident_id=incident_id)}
        for group in groups:
            async_to_sync(layer.group_send)(group, message)
    except Exception:  # a down Redis must not break the write that already committed
        log.exception("live event delivery failed", extra={"event": message["event"]})
