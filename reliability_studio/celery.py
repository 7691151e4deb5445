"""The Celery application and the beat schedule.

Beat only dispatches; each periodic job is a thin task that calls a service, so more workers on
more machines share the load. The schedule is CELERY_BEAT_SCHEDULE in settings.py.
"""
import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "reliability_studio.settings")

app = Celery("reliability_studio")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
