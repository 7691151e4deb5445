"""Kubernetes actions through the official client against a replayed API server: the dry run
shows what would change, and execution sends exactly the PATCH kubectl would."""
import pytest

from incidents.models import EventKind
from remediation import services
from remediation.models import ActionStatus, AuditEvent, AuditRecord

from ..telemetry.fixture_server import fixtures_root
from .conftest import TOKEN

pytestmark = pytest.mark.filterwarnings("ignore:HTTPResponse.getheaders:DeprecationWarning")
DEPLOYMENT = "/apis/apps/v1/namespaces/shop/deployments/checkout"
VS = "/apis/networking.istio.io/v1/namespaces/shop/virtualservices/checkout"


def _runbook(load_runbook, action, params):
    rendered = ", ".join(f"{k}: {v}" for k, v in params.items())
    return load_runbook(f"""
        runbooks:
          - name: fix
            match: {{hypothesis_kinds: [crash_loop], min_confidence: 0.5}}
            steps:
              - action: {action}
                params: {{{rendered}}}
    """)


def _run(incident, responders):
    [action] = services.propose_for_incident(incident_id=incident.pk)
    alice, bob = responders
    services.request_action(action=action, user=alice)
    services.approve_action(action=action, user=bob)
    return services.execute_action(action_id=action.pk)


@pytest.fixture
def flow(kube_api, incident, hypothesis, responders, load_runbook):
    hypothesis()

    def run(action, params):
        _runbook(load_runbook, action, params)
        return _run(incident, responders)
    return run


def test_rollout_restart_dry_run_then_the_strategic_merge_patch(flow, kube_api, incident):
    action = flow("kubernetes.rollout_restart", {"namespace": "$namespace", "deployment": "$service"})
    assert action.status == ActionStatus.SUCCEEDED, action.error
    assert action.target == "deployment shop/checkout"
    assert action.dry_run["changes"] == [{"path": "spec.template.metadata.annotations[kubectl.kubernetes.io/restartedAt]",
                                          "before": "2026-03-13T16:05:12Z", "after": "<time of execution>"}]
    [req] = kube_api.matching(DEPLOYMENT, "PATCH")
    assert req.headers["content-type"] == "application/strategic-merge-patch+json"
    assert req.headers["authorization"] == f"Bearer {TOKEN}"
    body = req.json()
    assert list(body["spec"]["template"]["metadata"]["annotations"]) == ["kubectl.kubernetes.io/restartedAt"]
    assert body["spec"]["template"]["metadata"]["annotations"]["kubectl.kubernetes.io/restartedAt"] == \
        action.result["restarted_at"]
    # Every step is on the timeline and in the audit log.
    messages = list(incident.timeline.filter(kind=EventKind.REMEDIATION).order_by("id").values_list("message", flat=True))
    prefixes = ["Remediation proposed:", "Remediation requested, awaiting a second person's approval:",
                "Remediation approved by bob (requested by alice):", "Remediation executing:", "Remediation succeeded in"]
    assert len(messages) == len(prefixes)
    assert all(m.startswith(p) for m, p in zip(messages, prefixes)), messages
    assert list(AuditRecord.objects.filter(action_id=action.pk).order_by("id").values_list("event", "actor")) == [
        (AuditEvent.PROPOSED, "remediation"), (AuditEvent.REQUESTED, "alice"), (AuditEvent.APPROVED, "bob"),
        (AuditEvent.EXECUTING, "remediation"), (AuditEvent.SUCCEEDED, "remediation")]
    succeeded = AuditRecord.objects.get(action_id=action.pk, event=AuditEvent.SUCCEEDED)
    assert succeeded.parameters == {"namespace": "shop", "deployment": "checkout"}
    assert succeeded.dry_run["changes"] and succeeded.result["restarted_at"]


def test_scale_patches_the_scale_subresource_with_a_merge_patch(flow, kube_api):
    action = flow("kubernetes.scale", {"namespace": "shop", "deployment": "checkout", "replicas": 5})
    assert action.status == ActionStatus.SUCCEEDED, action.error
    assert action.dry_run["changes"] == [{"path": "spec.replicas", "before": 3, "after": 5}]
    [req] = kube_api.matching(DEPLOYMENT + "/scale", "PATCH")
    assert req.headers["content-type"] == "application/merge-patch+json"
    assert req.json() == kube_api.load("kubernetes/patch-scale.merge.json")


def test_rollback_sends_the_replicaset_template_patch_of_rollout_undo(flow, kube_api):
    action = flow("kubernetes.rollback", {"namespace": "shop", "deployment": "checkout"})
    assert action.status == ActionStatus.SUCCEEDED, action.error
    assert {"path": "spec.template.spec.containers[checkout].image",
            "before": "registry.example.internal/shop/checkout:1.42.0",
            "after": "registry.example.internal/shop/checkout:1.41.2"} in action.dry_run["changes"]
    assert action.result == {"rolled_back_to": 3}
    [req] = kube_api.matching(DEPLOYMENT, "PATCH")
    assert req.headers["content-type"] == "application/json-patch+json"
    assert req.json() == kube_api.load("kubernetes/patch-rollout-undo.json-patch.json")
    assert action.dry_run["request"]["body"] == req.json()  # the dry run showed exactly what was sent


def test_delete_pod(flow, kube_api):
    pod = "checkout-7c9d8f6b5d-x2k4p"
    action = flow("kubernetes.delete_pod", {"namespace": "shop", "pod": pod})
    assert action.status == ActionStatus.SUCCEEDED, action.error
    assert "owner: ReplicaSet checkout-7c9d8f6b5d" in action.dry_run["summary"]
    [req] = kube_api.matching(f"/api/v1/namespaces/shop/pods/{pod}", "DELETE")
    assert req.headers["authorization"] == f"Bearer {TOKEN}"


def test_traffic_shift_dry_run_shows_before_and_after_weights(flow, kube_api):
    action = flow("kubernetes.shift_traffic", {"namespace": "shop", "virtual_service": "checkout", "from": "canary",
                                               "to": "stable", "percent": 10})
    assert action.status == ActionStatus.SUCCEEDED, action.error
    assert action.dry_run["weights"]["before"] == {"stable": 90, "canary": 10}
    assert action.dry_run["weights"]["after"] == {"stable": 100, "canary": 0}
    assert "stable 90%, canary 10% → stable 100%, canary 0%" in action.dry_run["summary"]
    [req] = kube_api.matching(VS, "PATCH")
    assert req.headers["content-type"] == "application/merge-patch+json"
    body = req.json()
    assert body["metadata"] == {"resourceVersion": "48213502"}
    assert [r["weight"] for r in body["spec"]["http"][0]["route"]] == [100, 0]
    assert body["spec"]["http"][0]["route"][0]["destination"] == {"host": "checkout.shop.svc.cluster.local",
                                                                  "subset": "stable"}


def test_a_refused_patch_fails_the_action_with_the_api_servers_message(flow, kube_api):
    from ..telemetry.fixture_server import Reply

    kube_api.route("PATCH", DEPLOYMENT, Reply(422, {"kind": "Status", "message": "deployments.apps \"checkout\" is invalid"}))
    action = flow("kubernetes.rollout_restart", {"namespace": "shop", "deployment": "checkout"})
    assert action.status == ActionStatus.FAILED
    assert 'is invalid' in action.error
    assert AuditRecord.objects.filter(action_id=action.pk, event=AuditEvent.FAILED).exists()


def test_fixtures_are_the_shared_ones():
    assert (fixtures_root() / "kubernetes/patch-rollout-undo.json-patch.json").exists()
