"""Receivers of incidents.hooks (sent after commit): they only queue work."""
from __future__ import annotations

from . import tasks


def on_incident_resolved(sender=None, *, incident_id: int, **_kwargs) -> None:
    tasks.record_incident_impacts.delay(incident_id)
