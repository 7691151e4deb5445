"""In-process notifications for downstream apps (investigation, notifications), sent after commit.

`incidents` must not import the apps built on it; they connect here instead (in their
AppConfig.ready). Receivers only queue work (a Celery task); they never write incidents.
"""
from __future__ import annotations

from django.db import transaction
from django.dispatch import Signal

# kwargs: incident_id
incident_opened = Signal()
# kwargs: incident_id, reopened_count
incident_reopened = Signal()
# kwargs: incident_id, service_ids (the services that were not in the incident before)
services_joined = Signal()
# kwargs: incident_id
incident_resolved = Signal()


def send_on_commit(signal: Signal, **kwargs) -> None:
    transaction.on_commit(lambda: signal.send_robust(sender=None, **kwargs), robust=True)
