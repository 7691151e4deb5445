"""Receivers: an incident opened or a hypothesis changed → queue runbook matching after commit.
They only queue work; matching itself is `services.propose_for_incident` in a task."""
from __future__ import annotations

import logging

from django.db import transaction

from . import tasks

log = logging.getLogger(__name__)


def _queue(incident_id: int) -> None:
    transaction.on_commit(lambda: tasks.match_runbooks.delay(incident_id), robust=True)


def on_incident_opened(sender=None, *, incident_id: int, **_):
    tasks.match_runbooks.delay(incident_id)  # incidents.hooks sends after commit already


def on_services_joined(sender=None, *, incident_id: int, **_):
    tasks.match_runbooks.delay(incident_id)


def on_hypothesis_saved(sender, instance, **_):
    # The investigation saves hypotheses (and re-ranks them) inside one transaction: matching after
    # its commit sees the final ranks and confidences.
    _queue(instance.incident_id)
