"""The running workload: metrics endpoints, control API contract and validation."""

from __future__ import annotations

import pytest
import requests

from demo.topology import SERVICES, topology_document

SERVICE_NAMES = [s.name for s in SERVICES]

pytestmark = pytest.mark.slow  # starts the workload as a real process


def _labels(samples, name):
    return [dict(labels) for (sample, labels) in samples if sample == name]


def test_healthz_and_topology(shop):
    health = shop.control("GET", "/healthz").json()
    assert health["status"] == "ok"
    assert health["services"] == {name: "up" for name in SERVICE_NAMES}
    assert shop.control("GET", "/topology").json() == topology_document("127.0.0.1", shop.base_port)


@pytest.mark.parametrize("service", SERVICE_NAMES)
def test_metrics_expose_named_series(shop, wait_for, service):
    spec = next(s for s in SERVICES if s.name == service)
    # Every route sees traffic within a few seconds at 60 rps.
    samples = wait_for(
        lambda: (m := shop.metrics(service)) and all(
            m.get(("http_requests_total", frozenset(
                {"service": service, "route": r.path, "code": "200"}.items())), 0) > 0
            for r in spec.routes) and m,
        timeout=15, message=f"traffic on every {service} route")
    for labels in _labels(samples, "http_requests_total"):
        assert set(labels) == {"service", "route", "code"}
        assert labels["service"] == service
        assert labels["route"] in {r.path for r in spec.routes}
    buckets = {labels["le"] for labels in _labels(samples, "http_request_duration_seconds_bucket")}
    assert {"0.05", "0.1", "0.25", "0.5", "1.0", "2.5", "+Inf"} <= buckets
    for labels in _labels(samples, "http_request_duration_seconds_count"):
        assert set(labels) == {"service", "route"}
    faults = {labels["kind"]: labels for labels in _labels(samples, "demo_fault_active")}
    assert set(faults) == {"error", "latency", "crash"}
    assert all(labels["service"] == service for labels in faults.values())
    assert all(samples[("demo_fault_active", frozenset(l.items()))] == 0 for l in faults.values())


def test_fault_gauge_follows_injection(shop):
    shop.control("POST", "/faults/catalog", json={"kind": "latency", "add_ms": 5})
    key = ("demo_fault_active", frozenset({"service": "catalog", "kind": "latency"}.items()))
    assert shop.metrics("catalog")[key] == 1
    shop.control("DELETE", "/faults/catalog")
    assert shop.metrics("catalog")[key] == 0


def test_fault_lifecycle_via_api(shop):
    response = shop.control("POST", "/faults/payment", json={"kind": "error", "error_rate": 0.3})
    assert response.status_code == 200
    (fault,) = response.json()["faults"]
    assert (fault["kind"], fault["error_rate"], fault["sampling"]) == ("error", 0.3, "stratified")
    shop.control("POST", "/faults/payment", json={"kind": "latency", "add_ms": 20})
    state = shop.control("GET", "/faults").json()["services"]
    assert {f["kind"] for f in state["payment"]["faults"]} == {"error", "latency"}
    assert state["catalog"]["faults"] == []
    recovered = shop.control("DELETE", "/faults/payment")
    assert recovered.status_code == 200 and recovered.json()["faults"] == []
    shop.control("POST", "/faults/catalog", json={"kind": "latency", "add_ms": 5})
    cleared = shop.control("DELETE", "/faults").json()["services"]
    assert all(s["faults"] == [] and s["up"] for s in cleared.values())


BAD_BODIES = [
    ({"kind": "error", "error_rate": 0}, "error_rate"),
    ({"kind": "error", "error_rate": 1.01}, "error_rate"),
    ({"kind": "error", "error_rate": "lots"}, "error_rate"),
    ({"kind": "latency", "add_ms": -100}, "add_ms"),
    ({"kind": "latency"}, "add_ms"),
    ({"kind": "gremlins"}, "unknown fault kind"),
    ({"error_rate": 0.3}, "unknown fault kind"),
    ("not an object", "JSON object"),
]


@pytest.mark.parametrize("body, fragment", BAD_BODIES)
def test_invalid_fault_is_400_and_changes_nothing(shop, body, fragment):
    shop.control("POST", "/faults/checkout", json={"kind": "latency", "add_ms": 10})
    before = shop.control("GET", "/faults").json()
    response = shop.control("POST", "/faults/checkout", json=body)
    assert response.status_code == 400
    assert response.headers["Content-Type"] == "application/json"
    assert fragment in response.json()["message"]
    assert shop.control("GET", "/faults").json() == before


@pytest.mark.parametrize("raw", [b"{not json", b"", b"\xff\xfe"])
def test_malformed_json_is_400(shop, raw):
    before = shop.control("GET", "/faults").json()
    response = shop.control("POST", "/faults/payment", data=raw,
                            headers={"Content-Type": "application/json"})
    assert response.status_code == 400
    assert response.json()["message"]
    assert shop.control("GET", "/faults").json() == before


def test_unknown_service_is_404(shop):
    before = shop.control("GET", "/faults").json()
    for method, kwargs in [("POST", {"json": {"kind": "crash"}}), ("DELETE", {}), ("GET", {})]:
        response = shop.control(method, "/faults/warehouse", **kwargs)
        assert response.status_code == 404
        assert "warehouse" in response.json()["message"]
    assert shop.control("GET", "/faults").json() == before
    assert shop.control("GET", "/nope").status_code == 404
    assert shop.control("PUT", "/faults").status_code == 405


def test_services_answer_their_routes_directly(shop):
    assert requests.get(shop.url("catalog") + "/products", timeout=5).json()["status"] == 200
    assert requests.get(shop.url("catalog") + "/nowhere", timeout=5).status_code == 404
    assert requests.post(shop.url("frontend") + "/checkout", timeout=5).status_code == 200
