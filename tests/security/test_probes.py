"""What an anonymous client can learn: /readyz names the dependency that is down, never its host,
user or exception text; /metrics needs the bearer token once METRICS_TOKEN is set; the API schema
and its documentation pages are for viewers and above."""
import logging

import pytest
from django.db.backends.postgresql.base import DatabaseWrapper

from reliability_studio import health, observability
from reliability_studio.access import Role

from ..servers import free_port

pytestmark = pytest.mark.django_db
SECRET_USER = "secret_db_user"


@pytest.fixture
def dependencies_down(settings, monkeypatch):
    """Postgres, Redis and the broker each pointed at a port where nothing listens, with a user name
    and password in the URLs (what an exception text would leak)."""
    from django.db import connection

    port = free_port()
    down = DatabaseWrapper({**connection.settings_dict, "HOST": "127.0.0.1", "PORT": port, "USER": SECRET_USER,
                            "PASSWORD": "hunter2", "OPTIONS": {"connect_timeout": 2}}, alias="readyz-down")
    monkeypatch.setattr(health, "connection", down)
    settings.REDIS_URL = settings.CELERY_BROKER_URL = f"redis://{SECRET_USER}:hunter2@127.0.0.1:{port}/0"
    observability.redis.cache_clear()
    yield port
    down.close()
    observability.redis.cache_clear()


def test_readyz_names_what_is_down_without_details(client, dependencies_down, caplog):
    port = dependencies_down
    with caplog.at_level(logging.WARNING, logger="reliability_studio.health"):
        response = client.get("/readyz")
    assert response.status_code == 503
    body = response.json()
    assert {name: check["ok"] for name, check in body["checks"].items()} == {
        "postgres": False, "redis": False, "celery_broker": False}
    assert {check["error"] for check in body["checks"].values()} <= {"Connection failed", "Timed out"}
    text = response.content.decode()
    for leak in ("127.0.0.1", str(port), SECRET_USER, "hunter2", "Error", "refused", "psycopg", "redis://"):
        assert leak not in text, leak
    assert str(port) in caplog.text  # the details are in the log, for the operator


def test_metrics_are_open_without_a_token(client):
    assert client.get("/metrics").status_code == 200


def test_metrics_need_the_bearer_token_when_one_is_set(client, settings):
    settings.METRICS_TOKEN = "scrape-token-0123456789"
    for headers in ({}, {"HTTP_AUTHORIZATION": "Bearer wrong"}, {"HTTP_AUTHORIZATION": "Bearer scrape-token-012345678"},
                    {"HTTP_AUTHORIZATION": "Token scrape-token-0123456789"}):
        refused = client.get("/metrics", **headers)
        assert refused.status_code == 401 and refused.json()["message"], headers
        assert b"rs_http_request" not in refused.content
    allowed = client.get("/metrics", HTTP_AUTHORIZATION="Bearer scrape-token-0123456789")
    assert allowed.status_code == 200 and b"rs_http_request_duration_seconds" in allowed.content


@pytest.mark.parametrize("path", ["/api/schema/", "/api/docs/", "/api/redoc/"])
def test_the_schema_and_docs_are_behind_login(client, make_user, path):
    anonymous = client.get(path)
    if path == "/api/schema/":
        assert anonymous.status_code == 401 and anonymous.json()["message"]
    else:
        assert anonymous.status_code == 302 and anonymous["Location"].startswith("/accounts/login/")
    client.force_login(make_user(None))  # an account without a role
    assert client.get(path).status_code in (401, 403)
    client.force_login(make_user(Role.VIEWER))
    allowed = client.get(path)
    assert allowed.status_code == 200
    if path == "/api/schema/":
        assert b"/api/v1/incidents/" in allowed.content
