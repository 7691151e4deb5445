"""Log-pattern and Kubernetes rules, evaluated through the real clients against recorded API shapes
served over real HTTP (Loki and a Kubernetes API server cannot run on this machine)."""
import pytest

from detection import services
from detection.models import Alert, AlertState, DetectionRule, KubernetesCondition, RuleHealth, RuleKind
from incidents.models import EventKind, Incident, Severity

from ..factories import ServiceFactory
from ..telemetry.fixture_server import FixtureServer, Reply, install_default_routes

pytestmark = pytest.mark.django_db


@pytest.fixture
def server():
    fixture = FixtureServer().start()
    install_default_routes(fixture)
    yield fixture
    fixture.stop()


@pytest.fixture
def fast_failures(settings):
    settings.TELEMETRY_TIMEOUT_SECONDS = 1
    settings.TELEMETRY_RETRIES = 0


def loki_vector(*samples):
    """The documented instant-query answer for a LogQL metric query."""
    return {"status": "success", "data": {"resultType": "vector", "result": [
        {"metric": labels, "value": [1773480600.0, str(value)]} for labels, value in samples
    ], "stats": {"summary": {"bytesProcessedPerSecond": 1}}}}


def test_log_spike_rule_fires_for_the_service_over_threshold(server, settings, fast_failures):
    ServiceFactory(slug="checkout")
    settings.LOKI_URL = server.url
    server.route("GET", "/loki/api/v1/query", Reply(body=loki_vector(({"service": "checkout"}, 57), ({"service": "catalog"}, 2))))
    rule = DetectionRule.objects.create(name="Error log spike", kind=RuleKind.LOG_PATTERN, severity=Severity.HIGH,
                                        query='sum by (service) (count_over_time({app="shop"} |= "error" [1m]))',
                                        threshold=30, for_seconds=0)
    services.evaluate_rule(rule=rule)
    rule.refresh_from_db()
    assert rule.health == RuleHealth.OK and rule.last_value == 57
    alert = Alert.objects.get(rule=rule)
    assert alert.labels == {"service": "checkout"} and alert.state == AlertState.FIRING
    incident = Incident.objects.get()
    assert incident.timeline.filter(kind=EventKind.LOG_SPIKE, message__startswith="FIRING").exists()
    assert server.matching("/loki/api/v1/query")[0].query["query"] == [rule.query]


def test_loki_error_text_is_shown_as_unknown(server, settings, fast_failures):
    settings.LOKI_URL = server.url
    server.route("GET", "/loki/api/v1/query", Reply(400, "parse error at line 1, col 5: syntax error", "text/plain"))
    rule = DetectionRule.objects.create(name="bad", kind=RuleKind.LOG_PATTERN, query="{", threshold=1)
    services.evaluate_rule(rule=rule)
    rule.refresh_from_db()
    assert rule.health == RuleHealth.UNKNOWN and "syntax error" in rule.last_error
    assert Incident.objects.count() == 0


@pytest.fixture
def kubeconfig(server, tmp_path, settings, fast_failures):
    path = tmp_path / "kubeconfig"
    path.write_text(f"""apiVersion: v1
kind: Config
clusters: [{{name: test, cluster: {{server: "{server.url}"}}}}]
users: [{{name: test, user: {{token: secret-token}}}}]
contexts: [{{name: test, context: {{cluster: test, user: test}}}}]
current-context: test
""")
    settings.KUBERNETES_KUBECONFIG = str(path)
    settings.KUBERNETES_NAMESPACES = ["shop"]
    return path


@pytest.mark.parametrize("condition", [KubernetesCondition.CRASH_LOOP, KubernetesCondition.OOM_KILLED,
                                       KubernetesCondition.RESTARTS])
def test_kubernetes_pod_conditions_fire(kubeconfig, condition):
    rule = DetectionRule.objects.create(name=f"k8s {condition}", kind=RuleKind.KUBERNETES, severity=Severity.HIGH,
                                        kubernetes_condition=condition, kubernetes_namespace="shop", threshold=5)
    services.evaluate_rule(rule=rule)
    rule.refresh_from_db()
    assert rule.health == RuleHealth.OK, rule.last_error
    alert = Alert.objects.get(rule=rule)
    assert alert.state == AlertState.FIRING and alert.value == 7  # restartCount in the recorded pod
    assert alert.labels["namespace"] == "shop" and alert.labels["pod"].startswith("checkout-")
    assert Incident.objects.get().timeline.filter(kind=EventKind.POD_CRASH).exists()


def test_kubernetes_unavailable_replicas(kubeconfig):
    rule = DetectionRule.objects.create(name="unavailable", kind=RuleKind.KUBERNETES, threshold=0,
                                        kubernetes_condition=KubernetesCondition.UNAVAILABLE, kubernetes_namespace="shop")
    services.evaluate_rule(rule=rule)
    rule.refresh_from_db()
    assert rule.health == RuleHealth.OK, rule.last_error
    alert = Alert.objects.get(rule=rule)
    assert alert.labels == {"namespace": "shop", "deployment": "checkout"} and alert.state == AlertState.FIRING


def test_admin_refuses_a_rule_the_source_rejects(server, settings, fast_failures, client, admin_user):
    settings.PROMETHEUS_URL = server.url
    server.fixture("POST", "/api/v1/format_query", "telemetry-api/prometheus-error-bad-data.json", status=400)
    client.force_login(admin_user)
    form = {"name": "broken", "kind": "threshold", "severity": "high", "query": "sum(rate(x[5m])",
            "comparator": ">", "threshold": "1", "anomaly_method": "ensemble", "baseline_window_seconds": "3600",
            "for_seconds": "0", "recovery_hold_seconds": "30", "evaluation_interval_seconds": "5", "labels": "{}",
            "enabled": "on"}
    response = client.post("/admin/detection/detectionrule/add/", form)
    assert response.status_code == 200  # the form again, with the error
    assert "the source refused this query" in response.content.decode()
    assert not DetectionRule.objects.exists()
    server.route("POST", "/api/v1/format_query", Reply(body={"status": "success", "data": "sum(rate(x[5m]))"}))
    form["query"] = "sum(rate(x[5m]))"
    assert client.post("/admin/detection/detectionrule/add/", form).status_code == 302
    assert DetectionRule.objects.get().query == "sum(rate(x[5m]))"
