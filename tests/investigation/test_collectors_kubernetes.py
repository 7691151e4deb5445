"""KubernetesCollector against Kubernetes v1 list shapes served over real HTTP (the official client, urllib3).

Scenario (tests/fixtures/investigation/README.md): payment was rolled out to revision 6 (payment:2.8.0) at
10:01:30; one of its two pods is OOMKilled and in CrashLoopBackOff, the BackOff warning repeats.
"""
from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone

import pytest

from investigation.collectors.base import Scope
from investigation.collectors.kubernetes import KubernetesCollector
from investigation.models import EvidenceStatus
from reliability_studio.telemetry import TelemetryError
from reliability_studio.telemetry.kubernetes import KubernetesClient
from tests.telemetry.fixture_server import FixtureServer, Recorded, Reply, fixtures_root

# The official client's ApiException calls urllib3's deprecated getheaders().
pytestmark = pytest.mark.filterwarnings("ignore:HTTPResponse.getheaders:DeprecationWarning")

FAST = {"timeout": 2.0, "retries": 0, "backoff_seconds": 0.01, "backoff_max_seconds": 0.02}
W0 = datetime(2026, 3, 14, 10, 0, tzinfo=timezone.utc)
W1 = datetime(2026, 3, 14, 10, 15, tzinfo=timezone.utc)
K8S = "investigation/kubernetes"
CRASHING = "payment-6d8f9c7b4-x2k4p"


def scope(*services: str) -> Scope:
    return Scope(incident_id=1, services=list(services), roles={s: "affected" for s in services}, edges=[],
                 selectors={s: {"kubernetes.namespace": "shop", "kubernetes.selector": f"app.kubernetes.io/name={s}",
                                "kubernetes.deployment": s} for s in services},
                 window_start=W0, window_end=W1, baseline_start=W0 - timedelta(minutes=30), baseline_end=W0,
                 detection_time=W0 + timedelta(minutes=5))


def later(seconds: float = 30.0) -> float:
    return time.monotonic() + seconds


@pytest.fixture
def server():
    srv = FixtureServer(fixtures_root())
    srv.start()
    yield srv
    srv.stop()


def install(server: FixtureServer, fail_pods_for: set[str] = frozenset()):
    def pods(req: Recorded) -> Reply:
        selector = req.query.get("labelSelector", [""])[0]
        if any(selector.endswith(f"={s}") for s in fail_pods_for):
            return Reply(403, {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                               "message": 'pods is forbidden: User "system:serviceaccount:rs:studio" cannot list '
                                          'resource "pods" in API group "" in the namespace "shop"',
                               "reason": "Forbidden", "details": {"kind": "pods"}, "code": 403})
        if selector == "app.kubernetes.io/name=payment":
            return server.recorded(f"{K8S}/pods-payment-crashloop.json")
        return server.recorded(f"{K8S}/pods-empty.json")

    server.route("GET", "/api/v1/namespaces/shop/pods", pods)
    server.route("GET", "/api/v1/namespaces/shop/events", server.recorded(f"{K8S}/events-payment-crashloop.json"))
    server.route("GET", "/apis/apps/v1/namespaces/shop/deployments", server.recorded(f"{K8S}/deployments-shop.json"))
    server.route("GET", "/apis/apps/v1/namespaces/shop/deployments/payment",
                 server.recorded(f"{K8S}/deployment-payment.json"))
    server.route("GET", "/apis/apps/v1/namespaces/shop/replicasets", server.recorded(f"{K8S}/replicasets-payment.json"))


def collector(server: FixtureServer) -> KubernetesCollector:
    return KubernetesCollector(KubernetesClient(host=server.url, token="t0ken", namespaces=["shop"], **FAST))


def test_crash_looping_payment_pod(server):
    install(server)
    items, inputs = collector(server).collect(scope("payment", "ghost"), later())
    payment, ghost = items
    assert (payment.kind, payment.source, payment.service, payment.status) == (
        "kubernetes", "kubernetes", "payment", "ok")
    assert payment.finding == (
        f"{CRASHING}: CrashLoopBackOff, last terminated OOMKilled (exit 137) at 10:04:03, 4 restarts; "
        "1/2 replicas unavailable; Warning BackOff ×23; rollout to revision 6 (payment:2.8.0) at 10:01:30")
    assert payment.score >= 9
    assert payment.query.splitlines() == [
        "GET /api/v1/namespaces/shop/pods?labelSelector=app.kubernetes.io%2Fname%3Dpayment",
        "GET /api/v1/namespaces/shop/events",
        "GET /apis/apps/v1/namespaces/shop/deployments",
        "GET /apis/apps/v1/namespaces/shop/deployments/payment",
        "GET /apis/apps/v1/namespaces/shop/replicasets?labelSelector=app.kubernetes.io%2Fname%3Dpayment",
    ]
    snap = payment.snapshot
    crashing = snap["pods"][0]
    assert crashing == {
        "name": CRASHING, "phase": "Running", "ready": False, "restarts": 4, "node": "worker-2",
        "waiting_reason": "CrashLoopBackOff",
        "waiting_message": crashing["waiting_message"],
        "last_termination": {"container": "payment", "reason": "OOMKilled", "exit_code": 137,
                             "finished_at": "2026-03-14T10:04:03+00:00"},
        "restarted_in_window": True,
    }
    assert crashing["waiting_message"].startswith("back-off 5m0s restarting failed container=payment")
    assert snap["pods"][1]["ready"] is True and snap["pods"][1]["last_termination"] is None
    assert snap["signals"]["crash_loop"] == [CRASHING] and snap["signals"]["oom_killed"] == [CRASHING]
    assert snap["deployment"]["unavailable"] == 1 and snap["deployment"]["revision"] == 6
    # only this service's warnings seen in the window: not inventory's, not the stale 07:10 one
    assert [(e["reason"], e["count"], e["object"]) for e in snap["events"]] == [
        ("BackOff", 23, f"Pod/{CRASHING}")]
    # rollouts for the changes evidence
    assert snap["rollouts"] == [
        {"revision": 5, "replicaset": "payment-5b7c8d9e1", "created": "2026-03-10T14:22:05+00:00",
         "images": ["registry.example.internal/shop/payment:2.7.3"], "current": False, "in_window": False,
         "change_cause": None},
        {"revision": 6, "replicaset": "payment-6d8f9c7b4", "created": "2026-03-14T10:01:30+00:00",
         "images": ["registry.example.internal/shop/payment:2.8.0"], "current": True, "in_window": True,
         "change_cause": "deploy payment 2.8.0 (pool size 50)"},
    ]
    assert payment.anomaly_start == datetime(2026, 3, 14, 10, 4, 3, tzinfo=timezone.utc)
    assert payment.snapshot_bytes() < 20_000

    # a service with no pods and no deployment
    assert ghost.status == EvidenceStatus.NO_DATA and ghost.score == 0.0
    assert ghost.finding == "no pods match app.kubernetes.io/name=ghost in namespace shop"
    # events and deployments are listed once per namespace
    assert server.hits("/api/v1/namespaces/shop/events") == 1
    assert server.hits("/apis/apps/v1/namespaces/shop/deployments") == 1
    assert inputs.logs == [] and inputs.traces == []


def test_one_service_failing_is_unavailable_and_the_others_still_collect(server):
    install(server, fail_pods_for={"checkout"})
    checkout, payment = collector(server).collect(scope("checkout", "payment"), later())[0]
    assert checkout.status == EvidenceStatus.UNAVAILABLE
    assert checkout.query == "GET /api/v1/namespaces/shop/pods?labelSelector=app.kubernetes.io%2Fname%3Dcheckout"
    assert "HTTP 403" in checkout.finding and "forbidden" in checkout.finding
    assert payment.status == "ok" and payment.score >= 9


def test_api_server_down_raises(server):
    server.route("GET", "/api/v1/namespaces/shop/pods", Reply(close=True))
    with pytest.raises(TelemetryError) as err:
        collector(server).collect(scope("checkout", "payment"), later())
    assert err.value.source == "kubernetes"


def test_events_failing_keeps_the_pods(server):
    install(server)
    server.route("GET", "/api/v1/namespaces/shop/events", Reply(500, {"kind": "Status", "message": "etcd timeout",
                                                                      "code": 500}))
    [payment], _ = collector(server).collect(scope("payment"), later())
    assert payment.status == "ok" and payment.snapshot["events"] == []
    assert "etcd timeout" in payment.snapshot["errors"]["events"]
    assert payment.finding.startswith(f"{CRASHING}: CrashLoopBackOff")


def test_deadline_passed_queries_nothing(server):
    install(server)
    [item], _ = collector(server).collect(scope("payment"), time.monotonic() - 1)
    assert item.status == EvidenceStatus.TIMED_OUT and server.hits() == 0


def test_configured_like_the_client_settings(settings):
    settings.KUBERNETES_KUBECONFIG = ""
    settings.KUBERNETES_IN_CLUSTER = False
    assert KubernetesCollector().configured() is False
    settings.KUBERNETES_IN_CLUSTER = True
    assert KubernetesCollector().configured() is True
    settings.KUBERNETES_IN_CLUSTER = False
    settings.KUBERNETES_KUBECONFIG = "/etc/rs/kubeconfig"
    assert KubernetesCollector().configured() is True
