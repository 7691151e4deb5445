"""Only the configured Grafana origin(s) may frame the control room."""
import pytest
from django.core.exceptions import ImproperlyConfigured
from django.test import Client, override_settings

from reliability_studio.framing import frame_ancestors

pytestmark = pytest.mark.django_db


def test_no_origin_configured_refuses_every_frame():
    with override_settings(GRAFANA_FRAME_ORIGINS=[]):
        response = Client().get("/healthz")
    assert response["Content-Security-Policy"] == "frame-ancestors 'none'"
    assert response["X-Frame-Options"] == "DENY"


def test_configured_origins_may_frame_and_x_frame_options_is_dropped():
    with override_settings(GRAFANA_FRAME_ORIGINS=["https://grafana.example.com", "http://127.0.0.1:3000/"]):
        response = Client().get("/accounts/login/")
    assert response["Content-Security-Policy"] == "frame-ancestors 'self' https://grafana.example.com http://127.0.0.1:3000"
    assert "X-Frame-Options" not in response  # a browser honouring only XFO would refuse Grafana too


@pytest.mark.parametrize("bad", ["grafana.example.com", "https://a.example; script-src *", "https://a.example/path", "*"])
def test_a_value_that_is_not_an_origin_is_refused_at_start_up(bad):
    with pytest.raises(ImproperlyConfigured):
        frame_ancestors([bad])
