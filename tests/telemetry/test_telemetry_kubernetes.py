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


# -- writes (remediation): the exact requests kubectl sends ------------------------------------------

from reliability_studio.telemetry.kubernetes import restart_patch, rollout_undo_patch  # noqa: E402

from .fixture_server import Reply  # noqa: E402

DEPLOYMENT_PATH = "/apis/apps/v1/namespaces/shop/deployments/checkout"


def _patch_reply(fixture_server, path, relative="kubernetes/deployment.json"):
    fixture_server.route("PATCH", path, Reply(200, (fixture_server.fixtures_dir / relative).read_bytes()))


def test_rollout_restart_sends_the_strategic_merge_patch(kube, fixture_server):
    _patch_reply(fixture_server, DEPLOYMENT_PATH)
    kube.rollout_restart("shop", "checkout", restarted_at="2026-03-14T09:45:00Z")
    [req] = fixture_server.matching(DEPLOYMENT_PATH, "PATCH")
    assert req.headers["content-type"] == "application/strategic-merge-patch+json"
    assert req.json() == fixture_server.load("kubernetes/patch-rollout-restart.strategic.json")
    assert req.headers["authorization"] == f"Bearer {TOKEN}"
    assert "dryRun" not in req.query


def test_scale_sends_a_merge_patch_to_the_scale_subresource(kube, fixture_server):
    _patch_reply(fixture_server, DEPLOYMENT_PATH + "/scale", "kubernetes/deployment-scale.json")
    kube.scale("shop", "checkout", 5)
    [req] = fixture_server.matching(DEPLOYMENT_PATH + "/scale", "PATCH")
    assert req.headers["content-type"] == "application/merge-patch+json"
    assert req.json() == fixture_server.load("kubernetes/patch-scale.merge.json")


def test_rollback_sends_the_json_patch_of_rollout_undo(kube, fixture_server):
    _patch_reply(fixture_server, DEPLOYMENT_PATH)
    kube.rollback("shop", "checkout")
    [req] = fixture_server.matching(DEPLOYMENT_PATH, "PATCH")
    assert req.headers["content-type"] == "application/json-patch+json"
    assert req.json() == fixture_server.load("kubernetes/patch-rollout-undo.json-patch.json")


def test_rollback_patch_is_computed_like_kubectl(fixture_server):
    deployment = fixture_server.load("kubernetes/deployment.json")
    replicasets = fixture_server.load("kubernetes/replicasets.json")["items"]
    patch, revision = rollout_undo_patch(deployment, replicasets)
    assert revision == 3
    assert "pod-template-hash" not in patch[0]["value"]["metadata"]["labels"]
    with pytest.raises(KubernetesError, match="already matches revision 4"):
        rollout_undo_patch(deployment, replicasets, to_revision=4)
    with pytest.raises(KubernetesError, match="unable to find specified revision 9"):
        rollout_undo_patch(deployment, replicasets, to_revision=9)
    paused = {**deployment, "spec": {**deployment["spec"], "paused": True}}
    with pytest.raises(KubernetesError, match="paused"):
        rollout_undo_patch(paused, replicasets)


def test_delete_pod_and_dry_run_query(kube, fixture_server):
    path = f"/api/v1/namespaces/shop/pods/{POD}"
    fixture_server.route("DELETE", path, Reply(200, (fixture_server.fixtures_dir / "kubernetes/pod-crashloopbackoff-oomkilled.json").read_bytes()))
    kube.delete_pod("shop", POD, dry_run=True)
    [req] = fixture_server.matching(path, "DELETE")
    assert req.query["dryRun"] == ["All"]


def test_virtual_service_weights_are_merge_patched_through_custom_objects(kube, fixture_server):
    path = "/apis/networking.istio.io/v1/namespaces/shop/virtualservices/checkout"
    fixture_server.fixture("GET", path, "kubernetes/virtualservice-checkout.json")
    fixture_server.fixture("PATCH", path, "kubernetes/virtualservice-checkout.json")
    vs = kube.virtual_service("shop", "checkout")
    assert vs["spec"]["http"][0]["route"][0]["weight"] == 90
    http = vs["spec"]["http"]
    http[0]["route"][0]["weight"], http[0]["route"][1]["weight"] = 50, 50
    patch = {"metadata": {"resourceVersion": vs["metadata"]["resourceVersion"]}, "spec": {"http": http}}
    kube.patch_virtual_service("shop", "checkout", patch)
    [req] = fixture_server.matching(path, "PATCH")
    assert req.headers["content-type"] == "application/merge-patch+json"
    assert req.json() == patch


def test_writes_are_not_retried(kube, fixture_server):
    fixture_server.route("PATCH", DEPLOYMENT_PATH, Reply(503, {"kind": "Status", "message": "etcd unavailable"}))
    with pytest.raises(KubernetesError, match="etcd unavailable"):
        kube.rollout_restart("shop", "checkout")
    assert fixture_server.hits(DEPLOYMENT_PATH) == 1
    assert restart_patch("x")["spec"]["template"]["metadata"]["annotations"] == {"kubectl.kubernetes.io/restartedAt": "x"}
