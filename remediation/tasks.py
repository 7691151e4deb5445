"""Thin Celery wrappers around remediation.services (idempotent: each re-reads state under a lock).

Matching and verification may be retried; execution may not: it is a write to production and
runs at most once (no acks_late). A worker lost mid-call leaves the action executing, and the
verification beat marks it failed after REMEDIATION_EXECUTION_TIMEOUT_SECONDS.
"""
from celery import shared_task
from django.db import InterfaceError, OperationalError

from . import services, verification

RETRY = {"autoretry_for": (OperationalError, InterfaceError), "retry_backoff": 2, "retry_backoff_max": 30,
         "max_retries": 3, "ignore_result": True}


@shared_task(name="remediation.match_runbooks", acks_late=True, **RETRY)
def match_runbooks(incident_id: int) -> None:
    """Match the runbooks against an incident and propose their first steps."""
    services.propose_for_incident(incident_id=incident_id)


@shared_task(name="remediation.execute_action", ignore_result=True)
def execute_action(action_id: int) -> None:
    """Run one approved action (an action in any other state is left alone)."""
    services.execute_action(action_id=action_id)


@shared_task(name="remediation.verify", ignore_result=True)
def verify_actions() -> None:
    """Beat: decide pending verifications; fail executions a dead worker left behind."""
    verification.check_pending()
    services.fail_lost_executions()
