"""A delivery answered 202 is never dropped for a database that is away for a while: the intake task
retries transient database errors without limit, and its longest wait stays below the broker's
visibility timeout (a retry waiting longer would be handed out twice)."""
from django.conf import settings

from detection import services
from detection.tasks import ingest_external_alerts


def test_transient_database_errors_are_retried_without_limit():
    assert ingest_external_alerts.max_retries is None
    assert set(ingest_external_alerts.autoretry_for) == set(services.TRANSIENT_ERRORS)


def test_the_longest_backoff_is_shorter_than_the_visibility_timeout():
    visibility = settings.CELERY_BROKER_TRANSPORT_OPTIONS["visibility_timeout"]
    assert ingest_external_alerts.retry_backoff and ingest_external_alerts.retry_backoff_max < visibility
    assert settings.CELERY_TASK_TIME_LIMIT < visibility
