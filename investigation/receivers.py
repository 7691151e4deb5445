"""Receivers of incidents.hooks: each only creates or queues a run (or the review); errors are
logged, never raised into the incident write that already committed (signals are sent robustly)."""
from __future__ import annotations

import functools
import logging

from incidents.models import Incident

from . import services, tasks
from .models import Trigger

log = logging.getLogger(__name__)


def _logged(receiver):
    @functools.wraps(receiver)
    def wrapper(*args, **kwargs):
        try:
            return receiver(*args, **kwargs)
        except Exception:
            log.exception("investigation receiver %s failed", receiver.__name__, extra={"incident": kwargs.get("incident_id")})
            raise

    return wrapper


@_logged
def on_incident_opened(sender=None, *, incident_id: int, **_):
    incident = Incident.objects.get(pk=incident_id)
    services.start_investigation(incident=incident, trigger=Trigger.OPENED, trigger_key="opened")


@_logged
def on_incident_reopened(sender=None, *, incident_id: int, reopened_count: int, **_):
    incident = Incident.objects.get(pk=incident_id)
    services.start_investigation(incident=incident, trigger=Trigger.REOPENED, trigger_key=f"reopened:{reopened_count}")


@_logged
def on_services_joined(sender=None, *, incident_id: int, service_ids: list[int], **_):
    services.investigate_joined_services(incident_id=incident_id, service_ids=service_ids)


@_logged
def on_incident_resolved(sender=None, *, incident_id: int, **_):
    tasks.generate_review.delay(incident_id)
