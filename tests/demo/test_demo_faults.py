"""Injected faults behave, propagate and get logged like real failures (real process, real HTTP)."""

from __future__ import annotations

import re
import socket
import time

import pytest
import requests

pytestmark = pytest.mark.slow  # starts the workload as a real process


def _fivexx(counts: dict[str, float]) -> float:
    return sum(v for code, v in counts.items() if code.startswith("5"))


def _delta(after: dict[str, float], before: dict[str, float]) -> dict[str, float]:
    return {code: after[code] - before.get(code, 0) for code in after}


def _bucket(shop, service: str, route: str) -> dict[str, float]:
    """Cumulative histogram buckets {le: count} for one route."""
    return {dict(labels)["le"]: value for (name, labels), value in shop.metrics(service).items()
            if name == "http_request_duration_seconds_bucket" and dict(labels)["route"] == route}


def _messages(shop, since: int, service: str) -> list[str]:
    return [line["msg"] for line in shop.logs(since) if line.get("service") == service]


def test_error_fault_ratio_and_propagation(shop, wait_for):
    before = {
        "payment": shop.requests_by_code("payment", "/charge"),
        "checkout": shop.requests_by_code("checkout", "/orders"),
        "frontend": shop.requests_by_code("frontend", "/checkout"),
    }
    offset = shop.log_offset()
    shop.control("POST", "/faults/payment", json={"kind": "error", "error_rate": 0.3})
    payment = wait_for(
        lambda: (d := _delta(shop.requests_by_code("payment", "/charge"), before["payment"]))
        and sum(d.values()) >= 300 and d,
        timeout=60, message="300 payment requests")
    shop.control("DELETE", "/faults/payment")
    ratio = _fivexx(payment) / sum(payment.values())
    assert ratio == pytest.approx(0.3, abs=0.05)
    assert set(code for code, v in payment.items() if v and code.startswith("5")) == {"500"}

    # One failed charge fails one order (no retries on 5xx: charges are not idempotent).
    checkout = _delta(shop.requests_by_code("checkout", "/orders"), before["checkout"])
    frontend = _delta(shop.requests_by_code("frontend", "/checkout"), before["frontend"])
    assert _fivexx(checkout) / sum(checkout.values()) == pytest.approx(0.3, abs=0.08)
    assert checkout.get("502", 0) > 0
    assert _fivexx(frontend) / sum(frontend.values()) == pytest.approx(0.3, abs=0.08)

    time.sleep(0.5)  # let the last log lines land
    own = re.compile(r"connection pool exhausted \(max=20, waiting=\d+\) after \d+ms")
    assert any(own.fullmatch(m) for m in _messages(shop, offset, "payment"))
    checkout_msgs = _messages(shop, offset, "checkout")
    assert "upstream payment failed: 500 (POST /charge)" in checkout_msgs
    assert "upstream checkout failed: 502 (POST /orders)" in _messages(shop, offset, "frontend")
    # The faulted service's own message appears in no other service.
    for other in ("checkout", "frontend", "catalog", "database"):
        assert not any(own.search(m) for m in _messages(shop, offset, other))


def test_log_lines_are_structured(shop):
    lines = shop.logs()[-200:]
    requests_logged = [line for line in lines if "status" in line and "duration_ms" in line]
    assert requests_logged
    for line in requests_logged:
        assert {"ts", "level", "service", "msg", "route", "status", "duration_ms",
                "trace_id"} <= set(line)
        assert len(line["trace_id"]) == 32 and int(line["trace_id"], 16) >= 0


def test_latency_fault_shifts_payment_histogram(shop, wait_for):
    before = _bucket(shop, "payment", "/charge")
    shop.control("POST", "/faults/payment", json={"kind": "latency", "add_ms": 300})
    start = shop.requests_by_code("payment", "/charge")
    wait_for(lambda: sum(_delta(shop.requests_by_code("payment", "/charge"), start).values())
             >= 60, timeout=30, message="60 slowed payment requests")
    during = _bucket(shop, "payment", "/charge")
    shop.control("DELETE", "/faults/payment")
    delta = {le: during[le] - before[le] for le in during}
    # Requests in flight at injection time may be fast; nearly all others take > 0.25 s.
    assert delta["0.25"] / delta["+Inf"] < 0.15
    assert delta["0.5"] / delta["+Inf"] > 0.9
    # Checkout waits for payment, so its order latency shifts as well.
    orders = _bucket(shop, "checkout", "/orders")
    assert orders["+Inf"] - orders["0.25"] > 0


def test_big_latency_times_out_upstream(shop, wait_for):
    offset = shop.log_offset()
    shop.control("POST", "/faults/database", json={"kind": "latency", "add_ms": 2600})
    wait_for(lambda: any("upstream database request timeout after 2000ms" in m
                         for m in _messages(shop, offset, "payment")),
             timeout=20, message="payment logging a database timeout")
    shop.control("DELETE", "/faults/database")
    statuses = {line.get("status") for line in shop.logs(offset)
                if line.get("service") == "payment" and line.get("route") == "/charge"}
    assert 504 in statuses


def _refused(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except ConnectionRefusedError:
        return True
    return False


def test_crash_refuses_connections_and_recovers(shop, wait_for):
    offset = shop.log_offset()
    response = shop.control("POST", "/faults/payment", json={"kind": "crash"})
    assert response.status_code == 200 and response.json()["up"] is False
    assert _refused(shop.port("payment"))
    with pytest.raises(requests.ConnectionError):
        requests.get(shop.url("payment") + "/metrics", timeout=2)
    assert shop.control("GET", "/healthz").json()["services"]["payment"] == "down"
    wait_for(lambda: any(m == f"connection refused to payment at 127.0.0.1:{shop.port('payment')}"
                         for m in _messages(shop, offset, "checkout")),
             timeout=10, message="checkout logging connection refused")

    recovered = shop.control("DELETE", "/faults/payment")
    assert recovered.status_code == 200 and recovered.json()["up"] is True
    assert requests.get(shop.url("payment") + "/metrics", timeout=2).status_code == 200
    assert requests.post(shop.url("frontend") + "/checkout", timeout=5).status_code == 200


def test_database_crash_shows_in_payment_and_checkout(shop, wait_for):
    offset = shop.log_offset()
    shop.control("POST", "/faults/database", json={"kind": "crash"})

    def both_refused():
        refused = [line["service"] for line in shop.logs(offset)
                   if line.get("msg", "").startswith("connection refused to database at")]
        return "payment" in refused and "checkout" in refused

    wait_for(both_refused, timeout=10, message="payment and checkout logging refusals")
    shop.control("DELETE", "/faults")
    assert requests.post(shop.url("database") + "/query", timeout=2).status_code == 200


def test_database_error_fault_logs_lock_wait_timeouts(shop, wait_for):
    offset = shop.log_offset()
    shop.control("POST", "/faults/database", json={"kind": "error", "error_rate": 0.5})
    wait_for(lambda: any(m.startswith("lock wait timeout exceeded on table orders (waited ")
                         for m in _messages(shop, offset, "database")),
             timeout=10, message="database logging lock wait timeouts")
    # The caller logs its side a moment later (after its own response handling): wait for it too,
    # rather than racing the recovery against it.
    wait_for(lambda: any(m.startswith("upstream database failed: 500") for m in _messages(shop, offset, "payment")),
             timeout=10, message="payment logging the database's 500")
    shop.control("DELETE", "/faults/database")
