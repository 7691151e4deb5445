"""Celery tasks of the investigation: thin wrappers around services, safe to run twice.

acks_late (with CELERY_TASK_REJECT_ON_WORKER_LOST) means a worker killed mid-run does not lose the
task: it is redelivered and `execute_run` resumes the run onto the same rows. Retries are bounded
and only for the database being briefly unreachable.
"""
from celery import shared_task
from django.db import InterfaceError, OperationalError

from incidents.models import Incident

from . import review, services

RETRY = {"autoretry_for": (OperationalError, InterfaceError), "retry_backoff": 2, "retry_backoff_max": 30,
         "max_retries": 3, "acks_late": True, "ignore_result": True}


@shared_task(name="investigation.run_investigation", **RETRY)
def run_investigation(run_id: int) -> None:
    """Execute one investigation run (a finished run is left alone)."""
    services.execute_run(run_id)


@shared_task(name="investigation.generate_review", **RETRY)
def generate_review(incident_id: int) -> None:
    """Generate (or refresh) the post-incident review once the incident resolves."""
    incident = Incident.objects.filter(pk=incident_id).first()
    if incident is not None:
        review.generate_review(incident)
