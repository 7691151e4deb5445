"""Fixtures for remediation: incidents with alerts and hypotheses, runbooks from YAML text, a
replayed Kubernetes API (the recorded fixtures, real HTTP, reached through a kubeconfig as in
production) and a webhook receiver that checks the HMAC."""
from __future__ import annotations

import json
import textwrap
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.utils import timezone

from detection.models import Alert, AlertState, DetectionRule, RuleKind
from incidents import services as incident_services
from incidents.models import Service, Severity
from investigation.models import Hypothesis, HypothesisKind
from reliability_studio.access import Role
from remediation import runbooks
from remediation import services as remediation

from ..telemetry.fixture_server import FixtureServer, Reply, fixtures_root, install_default_routes

TOKEN = "remediation-test-token"
SECRET = "webhook-test-secret"


@pytest.fixture(autouse=True)
def remediation_settings(settings):
    settings.REMEDIATION_KILL_SWITCH = False
    settings.REMEDIATION_RATE_LIMIT_COUNT = 3
    settings.REMEDIATION_RATE_LIMIT_WINDOW_SECONDS = 600
    settings.REMEDIATION_BREAKER_FAILURES = 3
    settings.REMEDIATION_VERIFY_SECONDS = 60
    settings.REMEDIATION_WEBHOOK_SECRET = SECRET
    settings.REMEDIATION_WEBHOOK_TIMEOUT_SECONDS = 1.0
    settings.REMEDIATION_WEBHOOK_MAX_RETRIES = 2
    settings.REMEDIATION_WEBHOOK_BACKOFF_SECONDS = 0.01
    settings.TELEMETRY_RETRIES = 0
    settings.TELEMETRY_TIMEOUT_SECONDS = 2
    return settings


@pytest.fixture
def responders(make_user):
    """Two different responders: one requests, the other approves (four eyes)."""
    return make_user(Role.RESPONDER, "alice"), make_user(Role.RESPONDER, "bob")


@pytest.fixture
def service(db):
    return Service.objects.create(slug="checkout", name="Checkout", labels={"namespace": "shop"})


@pytest.fixture
def incident(service):
    """An automatic incident on checkout with one firing alert of a rule (the signal to watch)."""
    rule = DetectionRule.objects.create(name="High error ratio", kind=RuleKind.THRESHOLD, severity=Severity.HIGH,
                                        query='sum(rate(http_requests_total{code=~"5.."}[30s]))', threshold=0.05,
                                        service=service)
    result = incident_services.open_or_update_incident(fingerprint="rule:1:checkout", title="High error ratio on checkout",
                                                       severity=Severity.HIGH, service=service)
    now = timezone.now()
    Alert.objects.create(fingerprint="a1", rule=rule, name="High error ratio", service=service,
                         severity=Severity.HIGH, labels={"service": "checkout"}, state=AlertState.FIRING,
                         value=0.4, firing_since=now, active_since=now, incident=result.incident)
    return result.incident


@pytest.fixture
def hypothesis(incident):
    def make(kind=HypothesisKind.CRASH_LOOP, confidence=0.9, service="checkout", rank=1):
        return Hypothesis.objects.create(incident=incident, kind=kind, service=service, title=f"{kind} in {service}",
                                         confidence=confidence, rank=rank)
    return make


@pytest.fixture
def load_runbook(tmp_path, db):
    """Write YAML text to a file, validate it like load_runbooks and store it."""
    def load(text: str, name: str = "test.yaml"):
        path = tmp_path / name
        path.write_text(textwrap.dedent(text))
        saved = [remediation.save_runbook(clean=clean, source_file=str(path))[0]
                 for clean in runbooks.parse_file(path)]
        return saved[0] if len(saved) == 1 else saved
    return load


# -- a replayed Kubernetes API, reached through a kubeconfig ---------------------------------------

@pytest.fixture
def kube_api(tmp_path, settings):
    server = FixtureServer(fixtures_root())
    install_default_routes(server)
    deployment = (fixtures_root() / "kubernetes/deployment.json").read_bytes()
    base = "/apis/apps/v1/namespaces/shop/deployments/checkout"
    server.route("PATCH", base, Reply(200, deployment))
    server.fixture("GET", base + "/scale", "kubernetes/deployment-scale.json")
    server.fixture("PATCH", base + "/scale", "kubernetes/deployment-scale.json")
    pod = json.loads((fixtures_root() / "kubernetes/pod-crashloopbackoff-oomkilled.json").read_text())
    server.route("DELETE", f"/api/v1/namespaces/shop/pods/{pod['metadata']['name']}", Reply(200, pod))
    vs = "/apis/networking.istio.io/v1/namespaces/shop/virtualservices/checkout"
    server.fixture("GET", vs, "kubernetes/virtualservice-checkout.json")
    server.fixture("PATCH", vs, "kubernetes/virtualservice-checkout.json")
    server.start()
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": "test",
        "clusters": [{"name": "fixtures", "cluster": {"server": server.url}}],
        "users": [{"name": "remediation", "user": {"token": TOKEN}}],
        "contexts": [{"name": "test", "context": {"cluster": "fixtures", "user": "remediation"}}],
    }))
    settings.KUBERNETES_KUBECONFIG = str(kubeconfig)
    yield server
    server.stop()


# -- a webhook receiver ------------------------------------------------------------------------------

class Receiver:
    """Records deliveries; answers with the scripted statuses (the last one repeats)."""

    def __init__(self, statuses=(200,), delay: float = 0.0):
        self.statuses, self.delay, self.deliveries = list(statuses), delay, []
        self.release = threading.Event()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                outer.deliveries.append({"headers": {k.lower(): v for k, v in self.headers.items()}, "body": body})
                if outer.delay:
                    outer.release.wait(outer.delay)
                status = outer.statuses.pop(0) if len(outer.statuses) > 1 else outer.statuses[0]
                payload = b'{"ok": true}'
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/hooks/rollback"

    def stop(self):
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def receiver():
    made = []

    def make(*statuses, delay: float = 0.0):
        r = Receiver(statuses or (200,), delay)
        made.append(r)
        return r

    yield make
    for r in made:
        r.stop()
