"""Fixtures for the telemetry client tests: a replaying HTTP server and a real Prometheus."""

from __future__ import annotations

import socket
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:  # so ``tests.support`` imports without pytest-django
    sys.path.insert(0, str(REPO))

from tests.support.prometheus import prometheus_available, start_prometheus  # noqa: E402

from .fixture_server import FixtureServer, fixtures_root, install_default_routes  # noqa: E402

TOKEN = "s3cr3t-token-DO-NOT-LEAK"

# Fast settings so error-path tests stay well under a second each.
FAST = {
    "timeout": 0.3,
    "retries": 2,
    "backoff_seconds": 0.01,
    "backoff_max_seconds": 0.05,
    "breaker_fail_max": 5,
    "breaker_reset_seconds": 30.0,
}


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    path = fixtures_root()
    if not path.is_dir():
        pytest.fail(f"recorded API fixtures not found at {path}")
    return path


@pytest.fixture
def fixture_server(fixtures_dir):
    server = FixtureServer(fixtures_dir)
    install_default_routes(server)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def closed_port_url() -> str:
    """A loopback URL where nothing listens (connection refused)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


@pytest.fixture(scope="session")
def real_prometheus():
    if not prometheus_available():
        pytest.skip("/usr/bin/prometheus is not installed")
    handle = start_prometheus([], scrape_interval="1s")
    try:
        handle.wait_for_series('up{job="prometheus"}')
        handle.wait_for_series("prometheus_build_info")
        yield handle
    finally:
        handle.stop()
