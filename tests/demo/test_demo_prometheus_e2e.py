"""End to end: the workload scraped by a real Prometheus at 1 s, faults seen through PromQL."""

from __future__ import annotations

import time

import pytest
import requests

from demo.topology import SERVICES
from tests.support.prometheus import prometheus_available, start_prometheus

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not prometheus_available(), reason="Prometheus binary not installed"),
]

SERVICE_NAMES = [s.name for s in SERVICES]
WINDOW = "10s"
ERROR_RATIO = (
    f'sum(rate(http_requests_total{{service="payment",code=~"5.."}}[{WINDOW}]))'
    f' / sum(rate(http_requests_total{{service="payment"}}[{WINDOW}]))'
)


def _query(prometheus, promql: str) -> list[dict]:
    response = requests.get(f"{prometheus.url}/api/v1/query", params={"query": promql}, timeout=5)
    response.raise_for_status()
    return response.json()["data"]["result"]


def _scalar(prometheus, promql: str) -> float | None:
    result = _query(prometheus, promql)
    return float(result[0]["value"][1]) if result else None


def _wait_value(prometheus, promql: str, accept, timeout: float) -> list[float]:
    """Poll an instant query until ``accept(value)``; return the values seen (fail on timeout)."""
    seen: list[float] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = _scalar(prometheus, promql)
        if value is not None:
            seen.append(round(value, 3))
            if accept(value):
                return seen
        time.sleep(0.5)
    pytest.fail(f"{promql} never accepted within {timeout}s; values seen: {seen}\n"
                f"{prometheus.log_tail()}")


@pytest.fixture
def scraped_shop(shop_factory):
    shop = shop_factory(rps=60)
    targets = [f"127.0.0.1:{shop.port(name)}" for name in SERVICE_NAMES]
    prometheus = start_prometheus(targets, scrape_interval="1s", job="shop")
    try:
        prometheus.wait_for_series('http_requests_total{service="payment"}')
        yield shop, prometheus
    finally:
        prometheus.stop()


def test_payment_error_ratio_visible_in_prometheus(scraped_shop):
    shop, prometheus = scraped_shop
    # Baseline: a healthy shop has no payment errors (series pre-created at 0, so no "no data").
    _wait_value(prometheus, ERROR_RATIO, lambda v: v == 0, timeout=15)
    up = _query(prometheus, 'up{job="shop"}')
    assert len(up) == 5 and all(r["value"][1] == "1" for r in up)

    shop.control("POST", "/faults/payment", json={"kind": "error", "error_rate": 0.3})
    # Rates need one full window of faulted samples before the ratio settles.
    time.sleep(8)
    _wait_value(prometheus, ERROR_RATIO, lambda v: abs(v - 0.3) <= 0.05, timeout=20)
    checkout_5xx = _scalar(prometheus, 'sum(rate(http_requests_total{service="checkout",'
                                       f'code=~"5.."}}[{WINDOW}]))')
    assert checkout_5xx and checkout_5xx > 0

    shop.control("DELETE", "/faults/payment")
    _wait_value(prometheus, ERROR_RATIO, lambda v: v < 0.02, timeout=20)


def test_crash_turns_up_to_zero(scraped_shop):
    shop, prometheus = scraped_shop
    instance = f"127.0.0.1:{shop.port('payment')}"
    _wait_value(prometheus, f'up{{instance="{instance}"}}', lambda v: v == 1, timeout=10)
    shop.control("POST", "/faults/payment", json={"kind": "crash"})
    _wait_value(prometheus, f'up{{instance="{instance}"}}', lambda v: v == 0, timeout=10)
    shop.control("DELETE", "/faults/payment")
    _wait_value(prometheus, f'up{{instance="{instance}"}}', lambda v: v == 1, timeout=10)
