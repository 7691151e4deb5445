"""The reverse-proxy user header: off by default, and trusted only from the configured proxies."""
import pytest
from django.contrib.auth import get_user_model

from reliability_studio.access import Role, role_of

pytestmark = pytest.mark.django_db


def test_header_is_ignored_by_default(client):
    response = client.get("/api/v1/incidents/", HTTP_X_WEBAUTH_USER="mallory")
    assert response.status_code == 401
    assert not get_user_model().objects.filter(username="mallory").exists()


def test_header_from_trusted_proxy_logs_in_with_default_role(client, settings):
    settings.AUTH_PROXY_ENABLED = True
    settings.AUTH_PROXY_TRUSTED_IPS = ["127.0.0.0/8"]
    response = client.get("/api/v1/incidents/", HTTP_X_WEBAUTH_USER="grafana-user", REMOTE_ADDR="127.0.0.1")
    assert response.status_code == 200
    user = get_user_model().objects.get(username="grafana-user")
    assert role_of(user) == Role.VIEWER
    # The session now carries the login, so the WebSocket and pages work without the header.
    assert client.get("/").status_code == 200


def test_header_from_untrusted_address_is_ignored(client, settings):
    settings.AUTH_PROXY_ENABLED = True
    settings.AUTH_PROXY_TRUSTED_IPS = ["10.0.0.5"]
    response = client.get("/api/v1/incidents/", HTTP_X_WEBAUTH_USER="mallory", REMOTE_ADDR="192.0.2.9")
    assert response.status_code == 401
    assert not get_user_model().objects.filter(username="mallory").exists()
