"""Fixtures running the demo shop as a real subprocess on free loopback ports."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:  # plain `pytest` (not `python -m pytest`) doesn't add the repo root
    sys.path.insert(0, str(REPO))

from tests.support.shop import SERVICE_COUNT, Shop, start_shop  # noqa: E402,F401 - re-exported to the tests


def _wait_for(predicate, timeout: float, interval: float = 0.25, message: str = "condition"):
    """Poll ``predicate`` until it returns a truthy value; return it or fail the test."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = predicate()
        if result:
            return result
        time.sleep(interval)
    pytest.fail(f"timed out after {timeout}s waiting for {message}")


@pytest.fixture
def wait_for():
    """The polling helper: ``wait_for(predicate, timeout, message=...)``."""
    return _wait_for


@pytest.fixture
def shop_factory(tmp_path):
    """Start extra workloads (e.g. with special env); all are stopped after the test."""
    started: list[Shop] = []

    def factory(rps: float = 60, env: dict | None = None) -> Shop:
        started.append(start_shop(tmp_path, rps=rps, env=env))
        return started[-1]

    yield factory
    for running in started:
        running.stop()


@pytest.fixture(scope="module")
def shop(tmp_path_factory) -> Shop:
    """One workload per test module at 60 rps; faults are cleared after each test."""
    running = start_shop(tmp_path_factory.mktemp("shop"), rps=60)
    yield running
    running.stop()


@pytest.fixture(autouse=True)
def _recover_faults(request):
    yield
    if "shop" in request.fixturenames:
        shop = request.getfixturevalue("shop")
        if shop.process.poll() is None:
            shop.control("DELETE", "/faults")
