"""The chaos API, the fire drill and the `chaos` / `firedrill` commands exist only with DEMO_ENABLED
(off by default in production; tests/project/test_settings.py checks the defaults)."""
from __future__ import annotations

import importlib
import os
import subprocess
import sys
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.test import override_settings
from django.urls import NoReverseMatch, Resolver404, clear_url_caches, resolve, reverse
from rest_framework.test import APIClient

from detection.chaos import DEMO_DISABLED

ROOT = Path(__file__).resolve().parents[2]
URL_MODULES = ("detection.api.urls", "detection.urls", "reliability_studio.urls")  # innermost first


def _remount() -> None:
    for name in URL_MODULES:
        importlib.reload(importlib.import_module(name))
    clear_url_caches()


@pytest.fixture
def demo_disabled():
    """The URL configuration as a production install without the demo builds it."""
    override = override_settings(DEMO_ENABLED=False)
    override.enable()
    try:
        _remount()
        yield
    finally:
        override.disable()
        _remount()  # back to the test settings' routes for every later test


def admin_api(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


CHAOS_PATHS = ["/api/v1/chaos/", "/api/v1/chaos/payment/"]
DRILL_PATHS = ["/detection/fire-drill/", "/detection/fire-drill/recover/"]


@pytest.mark.django_db
def test_without_the_demo_chaos_and_fire_drill_are_not_mounted(demo_disabled, admin_user, client):
    for path in CHAOS_PATHS + DRILL_PATHS:
        with pytest.raises(Resolver404):
            resolve(path)
    for name in ("chaos", "chaos-service", "detection:fire-drill", "detection:recover-all"):
        with pytest.raises(NoReverseMatch):
            reverse(name, kwargs={"service": "payment"} if name == "chaos-service" else None)
    api = admin_api(admin_user)
    assert api.get("/api/v1/chaos/").status_code == 404
    assert api.delete("/api/v1/chaos/").status_code == 404
    assert api.post("/api/v1/chaos/payment/", {"kind": "crash"}, format="json").status_code == 404
    client.force_login(admin_user)
    assert client.post("/detection/fire-drill/", {"service": "payment", "kind": "crash"}).status_code == 404
    page = client.get("/detection/")
    assert page.status_code == 200 and 'id="fire-drill"' not in page.content.decode()
    # The rest of detection is still there.
    assert resolve("/api/v1/rules/") and resolve("/detection/")


@pytest.mark.django_db
def test_with_the_demo_chaos_and_fire_drill_are_mounted(admin_user, client, control_api):
    assert resolve("/api/v1/chaos/payment/").url_name == "chaos-service"
    assert resolve("/detection/fire-drill/").view_name == "detection:fire-drill"
    assert admin_api(admin_user).get("/api/v1/chaos/").status_code == 200
    client.force_login(admin_user)
    assert 'id="fire-drill"' in client.get("/detection/").content.decode()


@pytest.mark.django_db
@pytest.mark.parametrize("argv", [["chaos", "status"], ["chaos", "crash", "payment"], ["firedrill"]])
def test_commands_refuse_with_one_line_without_the_demo(argv, settings, control_api):
    settings.DEMO_ENABLED = False
    with pytest.raises(CommandError) as refused:
        call_command(*argv, stdout=StringIO())
    assert str(refused.value) == DEMO_DISABLED and "\n" not in DEMO_DISABLED


def test_chaos_command_exits_non_zero_with_one_line_as_a_process():
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "reliability_studio.settings.test", "DEMO_ENABLED": "false"}
    done = subprocess.run([sys.executable, "manage.py", "chaos", "status"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode != 0
    assert done.stderr.strip().splitlines() == [f"CommandError: {DEMO_DISABLED}"]
