"""Fixtures for the investigation workflow: fast sources (no retries, short deadlines), sources
that are down or hang, and a real Prometheus scraping the demo shop."""
from __future__ import annotations

import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.core.management import call_command

from incidents.models import Service

from ..support.prometheus import prometheus_available, start_prometheus
from ..support.shop import start_shop


@pytest.fixture
def investigation_settings(settings):
    """Sources that answer or fail fast; every optional source unconfigured."""
    settings.TELEMETRY_RETRIES = 0
    settings.TELEMETRY_TIMEOUT_SECONDS = 2
    settings.INVESTIGATION_COLLECTOR_TIMEOUT_SECONDS = 3
    settings.INVESTIGATION_WINDOW_LEAD_SECONDS = 15
    settings.INVESTIGATION_RATE_WINDOW = "5s"
    settings.LOKI_URL = ""
    settings.TEMPO_URL = ""
    settings.GRAFANA_URL = ""
    settings.KUBERNETES_KUBECONFIG = ""
    settings.KUBERNETES_IN_CLUSTER = False
    return settings


@pytest.fixture
def demo_catalog(db):
    call_command("load_catalog", "demo/catalog.yaml", verbosity=0)
    return {s.slug: s for s in Service.objects.all()}


@pytest.fixture
def closed_port_url():
    """A loopback URL nothing listens on: connections are refused at once."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


class HangingServer:
    """An HTTP server whose every request blocks until `release()` (or the fixture ends)."""

    def __init__(self):
        self.released = threading.Event()
        self.requests = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's naming
                outer.requests += 1
                outer.released.wait(30)
                self.send_response(503)
                self.end_headers()

            do_GET = do_POST  # noqa: N815

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def release(self):
        self.released.set()

    def stop(self):
        self.release()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def hanging_server():
    server = HangingServer()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def shop_prometheus(tmp_path_factory):
    """The demo shop and a Prometheus scraping it every second (module-wide: they take seconds)."""
    if not prometheus_available():
        pytest.skip("the Debian package prometheus is not installed")
    shop = start_shop(tmp_path_factory.mktemp("shop"), rps=40)
    services = ("frontend", "catalog", "checkout", "payment", "database")
    prometheus = start_prometheus([f"127.0.0.1:{shop.port(s)}" for s in services], scrape_interval="1s", job="shop")
    started = time.monotonic()
    try:
        prometheus.wait_for_series('http_requests_total{service="payment"}')
        yield shop, prometheus, started
    finally:
        prometheus.stop()
        shop.stop()
