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
