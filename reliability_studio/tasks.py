"""Project-level Celery tasks and the task-duration metrics recorded by workers."""
import time

from celery import shared_task
from celery.signals import task_postrun, task_prerun

from . import observability

_started: dict[str, float] = {}


@shared_task(name="reliability_studio.tasks.heartbeat", ignore_result=True)
def heartbeat() -> float:
    """Leave the time of the last worker heartbeat in Redis (shown by /readyz and /metrics)."""
    now = time.time()
    observability.redis().set(observability.HEARTBEAT_KEY, now)
    return now


@task_prerun.connect
def _task_started(task_id=None, **_):
    _started[task_id] = time.perf_counter()


@task_postrun.connect
def _task_finished(task_id=None, task=None, state=None, **_):
    started = _started.pop(task_id, None)
    if started is not None and task is not None:
        observability.record_task_duration(task.name, state or "UNKNOWN", time.perf_counter() - started)
