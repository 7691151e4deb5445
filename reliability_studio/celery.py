"""The Celery application and the beat schedule.

Beat only dispatches; each periodic job is a thin task that calls a service, so more workers on
more machines share the load. Apps add their entries to CELERY_BEAT_SCHEDULE as they land.
"""
import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "reliability_studio.settings")

app = Celery("reliability_studio")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

app.conf.beat_schedule = {
    "incidents-heartbeat": {
        # Proves beat → broker → worker is alive; /readyz reads the timestamp it leaves.
        "task": "reliability_studio.tasks.heartbeat",
        "schedule": 15.0,
    },
}
