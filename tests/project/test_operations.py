"""/healthz, /readyz against a Redis that really stops, and the /metrics exposition."""
import shutil
import subprocess
import time

import pytest
import redis

from incidents import services
from incidents.models import Severity
from reliability_studio import observability

from ..servers import free_port

pytestmark = pytest.mark.django_db


@pytest.fixture
def own_redis(settings):
    """A Redis server of this test's own, so stopping it disturbs nobody else."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server is not installed")
    port = free_port()
    proc = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
                            stdout=subprocess.DEVNULL)
    url = f"redis://127.0.0.1:{port}/0"
    deadline = time.monotonic() + 10
    while True:
        try:
            redis.Redis.from_url(url).ping()
            break
        except redis.ConnectionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
    settings.REDIS_URL = settings.CELERY_BROKER_URL = url
    observability.redis.cache_clear()
    yield proc
    proc.kill()
    proc.wait()
    observability.redis.cache_clear()


def test_healthz(client):
    assert client.get("/healthz").json() == {"status": "ok"}


def test_readyz_reports_a_stopped_redis(client, own_redis):
    ready = client.get("/readyz")
    assert ready.status_code == 200, ready.content
    assert ready.json()["checks"]["redis"]["ok"] and ready.json()["checks"]["postgres"]["ok"]

    own_redis.terminate()
    own_redis.wait(10)
    down = client.get("/readyz")
    assert down.status_code == 503
    body = down.json()
    assert body["status"] == "unavailable"
    assert body["checks"]["redis"]["ok"] is False and "Connection" in body["checks"]["redis"]["error"]
    assert body["checks"]["celery_broker"]["ok"] is False
    assert body["checks"]["postgres"]["ok"] is True


def test_metrics_expose_requests_incidents_and_task_durations(client):
    services.create_incident(title="a", severity=Severity.CRITICAL)
    services.create_incident(title="b", severity=Severity.CRITICAL)
    observability.record_task_duration("detection.evaluate_rule", "SUCCESS", 0.2)
    client.get("/healthz")
    text = client.get("/metrics").content.decode()
    assert 'rs_incidents{severity="critical",status="open"} 2.0' in text
    assert 'rs_http_request_duration_seconds_count{method="GET",route="healthz",status="200"}' in text
    assert 'rs_celery_task_duration_seconds_bucket{le="0.25",state="SUCCESS",task="detection.evaluate_rule"}' in text
