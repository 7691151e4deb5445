"""Chaos through the management command and the admin API, seen through the product's own
Prometheus client against a real Prometheus scraping the demo shop."""
import subprocess
import sys
import time

import pytest
from django.core.management import CommandError, call_command
from rest_framework.test import APIClient

from reliability_studio.access import Role
from reliability_studio.telemetry.prometheus import PrometheusClient

from ..servers import ROOT
from ..support.prometheus import prometheus_available, start_prometheus
from ..support.shop import start_shop

SCRAPE = 2.0
# irate uses the last two samples, so the ratio reflects the latest scrape interval only.
RATIO = ('sum(irate(http_requests_total{service="payment",code=~"5.."}[10s]))'
         ' / sum(irate(http_requests_total{service="payment"}[10s]))')


@pytest.fixture(scope="module")
def shop(tmp_path_factory):
    running = start_shop(tmp_path_factory.mktemp("shop"), rps=60)
    yield running
    running.stop()


@pytest.fixture
def chaos_target(shop, settings):
    settings.DEMO_CONTROL_URL = shop.control_url
    return shop


def ratio_when(client, accept, timeout):
    """Seconds until the ratio read through the client is accepted, and the values seen."""
    started, seen = time.monotonic(), []
    while time.monotonic() - started < timeout:
        value = client.query(RATIO).samples
        if value:
            seen.append(round(value[0].value, 3))
            if accept(value[0].value):
                return time.monotonic() - started, seen
        time.sleep(0.2)
    pytest.fail(f"ratio never accepted within {timeout}s; seen {seen}")


@pytest.mark.slow
@pytest.mark.skipif(not prometheus_available(), reason="the Debian package prometheus is not installed")
def test_chaos_fail_is_visible_through_the_client_within_two_scrapes(chaos_target, capsys):
    shop = chaos_target
    prometheus = start_prometheus([f"127.0.0.1:{shop.port('payment')}"], scrape_interval=f"{SCRAPE:g}s", job="shop")
    try:
        prometheus.wait_for_series('http_requests_total{service="payment"}')
        client = PrometheusClient(prometheus.url)
        ratio_when(client, lambda v: v == 0, timeout=15)  # healthy baseline

        call_command("chaos", "fail", "payment", "--error-rate", "0.3")
        assert "error rate 0.3" in capsys.readouterr().out
        took, seen = ratio_when(client, lambda v: abs(v - 0.3) <= 0.05, timeout=10)
        assert took <= 2 * SCRAPE + 1.0, f"took {took:.1f}s; seen {seen}"

        call_command("chaos", "recover")
        took, seen = ratio_when(client, lambda v: v <= 0.02, timeout=10)
        assert took <= 2 * SCRAPE + 1.0, f"took {took:.1f}s; seen {seen}"
    finally:
        call_command("chaos", "recover")
        prometheus.stop()


@pytest.mark.parametrize(
    "argv, message",
    [
        (["fail", "nosuch", "--error-rate", "0.3"], "unknown service 'nosuch'"),
        (["fail", "payment", "--error-rate", "1.5"], "error rate must be in (0, 1]"),
        (["latency", "payment", "--add", "fast"], "bad duration 'fast'"),
        (["latency", "payment", "--add", "0ms"], "added latency must be positive"),
    ],
)
def test_bad_chaos_input_is_one_line_and_changes_nothing(chaos_target, argv, message):
    with pytest.raises(CommandError, match=message.replace("(", r"\(").replace("]", r"\]")):
        call_command("chaos", *argv)
    state = chaos_target.control("GET", "/faults").json()["services"]
    assert all(not info["faults"] for info in state.values())


def test_unreachable_workload_exits_non_zero_with_one_line(settings, tmp_path):
    env = {"DEMO_CONTROL_URL": "http://127.0.0.1:9", "DJANGO_SETTINGS_MODULE": "reliability_studio.settings.test",
           "PATH": "/usr/bin:/bin"}
    done = subprocess.run([sys.executable, "manage.py", "chaos", "status"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode != 0
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "unreachable" in lines[0]


@pytest.mark.django_db
def test_chaos_api_is_for_admins_and_validates(chaos_target, make_user):
    client = APIClient()
    client.force_authenticate(make_user(Role.RESPONDER))
    assert client.post("/api/v1/chaos/payment/", {"kind": "crash"}, format="json").status_code == 403
    client.force_authenticate(make_user(Role.ADMIN))
    bad = client.post("/api/v1/chaos/payment/", {"kind": "error"}, format="json")
    assert bad.status_code == 400 and "error_rate" in bad.json()["errors"]
    assert client.post("/api/v1/chaos/nosuch/", {"kind": "crash"}, format="json").status_code == 404
    ok = client.post("/api/v1/chaos/payment/", {"kind": "latency", "add_ms": 300}, format="json")
    assert ok.status_code == 200 and ok.json()["faults"][0]["add_ms"] == 300
    assert client.delete("/api/v1/chaos/").status_code == 200
    assert not chaos_target.control("GET", "/faults/payment").json()["faults"]
