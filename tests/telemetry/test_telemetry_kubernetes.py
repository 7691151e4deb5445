"""KubernetesClient (official client, urllib3) against the fixture server at real API paths."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from reliability_studio.telemetry import KubernetesError
from reliability_studio.telemetry.kubernetes import KubernetesClient

from .conftest import FAST, TOKEN

# The official client's ApiException calls urllib3's deprecated getheaders().
pytestmark = pytest.mark.filterwarnings("ignore:HTTPResponse.getheaders:DeprecationWarning")

POD = "checkout-7c9d8f6b5d-x2k4p"


@pytest.fixture
def kube(fixture_server):
    return KubernetesClient(host=fixture_server.url, token=TOKEN, namespaces=["shop"], **FAST)


def test_pods_crashloop_oomkilled(kube, fixture_server):
    [pod] = kube.pods("shop", label_selector="app.kubernetes.io/name=checkout")
    assert (pod.name, pod.namespace, pod.phase, pod.ready) == (POD, "shop", "Running", False)
    assert (pod.owner_kind, pod.owner_name) == ("ReplicaSet", "checkout-7c9d8f6b5d")
    assert pod.conditions["ContainersReady"] == "False"
    [c] = pod.containers
    assert (c.state, c.reason) == ("waiting", "CrashLoopBackOff")
    assert c.message.startswith("back-off 5m0s restarting failed container=checkout")
    assert c.restart_count == 7 and pod.restart_count == 7
    assert (c.last_termination_reason, c.last_exit_code) == ("OOMKilled", 137)
    assert c.last_finished_at == datetime(2026, 3, 14, 9, 24, 3, tzinfo=timezone.utc)
    assert c.ready is False and c.exit_code is None
    [req] = fixture_server.matching("/api/v1/namespaces/shop/pods")
    assert req.query["labelSelector"] == ["app.kubernetes.io/name=checkout"]


def test_pods_default_to_configured_namespaces(kube, fixture_server):
    assert [p.name for p in kube.pods()] == [POD]
    assert fixture_server.hits("/api/v1/namespaces/shop/pods") == 1


def test_single_pod(kube):
    assert kube.pod("shop", POD).containers[0].last_termination_reason == "OOMKilled"


def test_events(kube, fixture_server):
    events = kube.events("shop", involved_object=("Pod", POD))
    assert [e.reason for e in events] == ["ScalingReplicaSet", "Pulled", "Created", "Started", "BackOff"]
    backoff = events[-1]
    assert (backoff.type, backoff.count, backoff.source) == ("Warning", 31, "kubelet")
    assert (backoff.object_kind, backoff.object_name) == ("Pod", POD)
    assert backoff.last_seen == datetime(2026, 3, 14, 9, 29, 12, tzinfo=timezone.utc)
    [req] = fixture_server.matching("/api/v1/namespaces/shop/events")
    assert req.query["fieldSelector"] == [f"involvedObject.name={POD},involvedObject.kind=Pod"]


def test_deployments(kube):
    [dep] = kube.deployments("shop")
    assert (dep.name, dep.revision, dep.replicas, dep.ready_replicas) == ("checkout", 4, 3, 1)
    assert dep.images == ["registry.example.internal/shop/checkout:1.42.0"]
    assert dep.conditions["Progressing"].reason == "ProgressDeadlineExceeded"
    assert dep.conditions["Available"].status == "False"


def test_rollout_history(kube, fixture_server):
    history = kube.rollout_history("shop", "checkout")
    assert [(r.revision, r.replicaset, r.current) for r in history] == [
        (3, "checkout-5f6b84c79d", False),
        (4, "checkout-7c9d8f6b5d", True),
    ]
    assert history[0].images == ["registry.example.internal/shop/checkout:1.41.2"]
    assert history[1].images == ["registry.example.internal/shop/checkout:1.42.0"]
    assert (history[0].replicas, history[1].replicas) == (0, 3)
    assert history[0].created == datetime(2026, 3, 13, 16, 5, 12, tzinfo=timezone.utc)
    [req] = fixture_server.matching("/apis/apps/v1/namespaces/shop/replicasets")
    assert req.query["labelSelector"] == ["app.kubernetes.io/name=checkout"]


def test_not_found_deployment(kube, fixture_server):
    with pytest.raises(KubernetesError) as info:
        kube.rollout_history("shop", "nope")
    assert info.value.kind == "not_found" and info.value.status == 404
    assert fixture_server.hits("/apis/apps/v1/namespaces/shop/deployments/nope") == 1


def test_missing_kubeconfig_is_not_configured(tmp_path):
    client = KubernetesClient(kubeconfig=str(tmp_path / "missing.yaml"))
    with pytest.raises(KubernetesError) as info:
        client.pods("shop")
    assert info.value.kind == "not_configured"


def test_kubeconfig_file(fixture_server, tmp_path):
    kubeconfig = tmp_path / "config"
    kubeconfig.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: test\n"
        f"clusters: [{{name: c, cluster: {{server: '{fixture_server.url}'}}}}]\n"
        f"users: [{{name: u, user: {{token: {TOKEN}}}}}]\n"
        "contexts: [{name: test, context: {cluster: c, user: u}}]\n"
    )
    client = KubernetesClient(kubeconfig=str(kubeconfig), **FAST)
    assert [p.name for p in client.pods("shop")] == [POD]
    assert fixture_server.matching("/api/v1/namespaces/shop/pods")[0].headers["authorization"] == f"Bearer {TOKEN}"
    assert TOKEN not in repr(client)
