"""The Celery application and the beat schedule.

Beat only dispatches; each periodic job is a thin task that calls a service, so more workers on
more machines share the load. The schedule is CELERY_BEAT_SCHEDULE in settings/common.py.
"""
import logging
import os

from celery import Celery
from celery.signals import after_setup_logger

# Fail closed, as reliability_studio/asgi.py: production unless DJANGO_SETTINGS_MODULE says otherwise.
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "reliability_studio.settings.production")

app = Celery("reliability_studio")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@after_setup_logger.connect
def quiet_per_task_lines(**_kwargs) -> None:
    """Beat sends a detection dispatch every second: at INFO the worker would print two lines per
    task ("received", "succeeded") and drown everything else. Failures still log (ERROR), and
    task durations are on /metrics."""
    for name in ("celery.worker.strategy", "celery.app.trace"):
        logging.getLogger(name).setLevel(logging.WARNING)
