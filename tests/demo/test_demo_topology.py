"""The topology data, the catalog it must match, the scrape config, fault validation."""

from __future__ import annotations

import random
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from demo.faults import ErrorSampler, FaultInputError, validate_fault
from demo.topology import BY_NAME, SERVICES, TRAFFIC_MIX, prometheus_scrape_config
from demo.topology import topology_document

REPO = Path(__file__).resolve().parents[2]


def test_topology_matches_the_product_catalog():
    catalog = yaml.safe_load((REPO / "demo" / "catalog.yaml").read_text())
    declared = {s["slug"]: set(s.get("depends_on", [])) for s in catalog["services"]}
    actual = {s.name: set(s.calls) for s in SERVICES}
    assert declared == actual


def test_topology_is_a_consistent_dag():
    offsets = [s.port_offset for s in SERVICES]
    assert len(set(offsets)) == len(offsets)
    for service in SERVICES:
        assert all(callee in BY_NAME for callee in service.calls)
        # Every call targets a route the callee really serves.
        for route in service.routes:
            for call in route.calls:
                assert BY_NAME[call.service].route(call.method, call.path) is not None
    # Timeouts shrink downstream so callees answer before their callers give up.
    checkout_to_payment = BY_NAME["checkout"].route("POST", "/orders").calls[0]
    payment_to_db = BY_NAME["payment"].route("POST", "/charge").calls[0]
    frontend_to_checkout = BY_NAME["frontend"].route("POST", "/checkout").calls[0]
    assert frontend_to_checkout.timeout_s > checkout_to_payment.timeout_s > payment_to_db.timeout_s
    for method, path, _weight in TRAFFIC_MIX:
        assert BY_NAME["frontend"].route(method, path) is not None


def test_topology_document_resolves_ports():
    doc = topology_document("127.0.0.1", 9101)
    ports = {s["name"]: s["port"] for s in doc["services"]}
    assert ports == {"frontend": 9101, "catalog": 9102, "checkout": 9103, "payment": 9104,
                     "database": 9105}
    assert {"from": "payment", "to": "database"} in doc["edges"]


def test_scrape_config_lists_every_service_and_is_valid(tmp_path):
    text = prometheus_scrape_config("127.0.0.1", 9101, interval="5s")
    config = yaml.safe_load(text)
    job = config["scrape_configs"][0]
    assert job["job_name"] == "shop" and config["global"]["scrape_interval"] == "5s"
    targets = {sc["labels"]["service"]: sc["targets"] for sc in job["static_configs"]}
    assert targets["payment"] == ["127.0.0.1:9104"]
    assert set(targets) == set(BY_NAME)
    if shutil.which("promtool"):
        path = tmp_path / "prometheus.yml"
        path.write_text(text)
        check = subprocess.run(["promtool", "check", "config", str(path)],
                               capture_output=True, text=True)
        assert check.returncode == 0, check.stdout + check.stderr


def test_prometheus_config_cli_writes_file(tmp_path):
    out = tmp_path / "prom.yml"
    subprocess.run([sys.executable, "-m", "demo.prometheus_config", "--out", str(out),
                    "--interval", "1s", "--base-port", "19101"], cwd=REPO, check=True)
    config = yaml.safe_load(out.read_text())
    assert config["global"]["scrape_interval"] == "1s"
    assert ["127.0.0.1:19101"] in [sc["targets"] for sc in
                                   config["scrape_configs"][0]["static_configs"]]
    bad = subprocess.run([sys.executable, "-m", "demo.prometheus_config", "--interval", "soon"],
                         cwd=REPO, capture_output=True, text=True)
    assert bad.returncode == 2 and "duration" in bad.stderr


@pytest.mark.parametrize("rate", [0.3, 0.05, 0.33, 1.0])
def test_stratified_sampler_hits_the_rate_in_short_windows(rate):
    sampler = ErrorSampler(rate, rng=random.Random(7))
    draws = [sampler.draw() for _ in range(10_000)]
    assert abs(sum(draws) / len(draws) - rate) < 0.01
    # Any 200-request window is within ±0.05 (block stratification bounds the noise).
    for start in range(0, 10_000 - 200, 37):
        assert abs(sum(draws[start:start + 200]) / 200 - rate) <= 0.05


def test_iid_sampler_is_unbiased():
    sampler = ErrorSampler(0.3, sampling="iid", rng=random.Random(3))
    assert abs(sum(sampler.draw() for _ in range(20_000)) / 20_000 - 0.3) < 0.02


@pytest.mark.parametrize("body, message", [
    ({"kind": "error", "error_rate": 0}, "(0, 1]"),
    ({"kind": "error", "error_rate": 1.5}, "(0, 1]"),
    ({"kind": "error", "error_rate": "0.3"}, "finite number"),
    ({"kind": "error", "error_rate": True}, "finite number"),
    ({"kind": "error", "error_rate": float("nan")}, "finite number"),
    ({"kind": "error"}, "required"),
    ({"kind": "error", "error_rate": 0.3, "sampling": "fancy"}, "sampling"),
    ({"kind": "latency", "add_ms": -5}, "add_ms"),
    ({"kind": "latency", "add_ms": 10**9}, "add_ms"),
    ({"kind": "latency"}, "required"),
    ({"kind": "crash", "add_ms": 5}, "unexpected field"),
    ({"kind": "meteor"}, "unknown fault kind"),
    ({}, "unknown fault kind"),
    ([1, 2], "JSON object"),
    (None, "JSON object"),
])
def test_validate_fault_rejects(body, message):
    with pytest.raises(FaultInputError, match=message.replace("(", r"\(").replace("]", r"\]")):
        validate_fault(body)


def test_validate_fault_normalises():
    assert validate_fault({"kind": "error", "error_rate": 1}) == {
        "kind": "error", "error_rate": 1.0, "sampling": "stratified"}
    assert validate_fault({"kind": "latency", "add_ms": 800}) == {"kind": "latency", "add_ms": 800.0}
    assert validate_fault({"kind": "crash"}) == {"kind": "crash"}
