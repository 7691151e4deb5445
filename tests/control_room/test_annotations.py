"""Incident annotations in Grafana, against a small in-memory stand-in for its annotations API
(served over real HTTP; request and response shapes from tests/fixtures/grafana)."""
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest

from incidents import services
from incidents.annotations import TAG, sync_incident_annotation
from incidents.models import Status
from reliability_studio.telemetry.grafana import GrafanaClient

from ..factories import ServiceFactory

pytestmark = pytest.mark.django_db
GRAFANA_FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "grafana"


class FakeGrafana(ThreadingHTTPServer):
    def __init__(self):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.annotations: dict[int, dict] = {}
        self.requests: list[tuple[str, str]] = []
        self.posted: list[dict] = []  # each POST as received: path, headers, JSON body


class _Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def _reply(self, status, body):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _body(self):
        return json.loads(self.rfile.read(int(self.headers["Content-Length"])))

    def do_GET(self):
        self.server.requests.append(("GET", self.path))
        tags = parse_qs(urlparse(self.path).query).get("tags", [])
        found = [a for a in self.server.annotations.values() if set(tags) <= set(a["tags"])]
        self._reply(200, found)

    def do_POST(self):
        self.server.requests.append(("POST", self.path))
        body = self._body()
        self.server.posted.append({"path": self.path, "headers": dict(self.headers), "body": body})
        annotation_id = len(self.server.annotations) + 1
        self.server.annotations[annotation_id] = {"id": annotation_id, "timeEnd": body.get("timeEnd", body["time"]), **body}
        self._reply(200, {"message": "Annotation added", "id": annotation_id})

    def do_PATCH(self):
        self.server.requests.append(("PATCH", self.path))
        annotation_id = int(self.path.rsplit("/", 1)[1])
        self.server.annotations[annotation_id].update(self._body())
        self._reply(200, {"message": "Annotation patched"})


@pytest.fixture
def grafana():
    server = FakeGrafana()
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()
    server.server_close()


def client_for(server):
    return GrafanaClient(f"http://127.0.0.1:{server.server_address[1]}", token="test-token", timeout=5, retries=0)


def test_open_then_resolve_then_reopen_keeps_one_annotation_in_step(grafana, responder):
    client = client_for(grafana)
    incident = services.create_incident(title="Payment 5xx", severity="critical",
                                        primary_service=ServiceFactory(slug="payment"))
    annotation_id = sync_incident_annotation(incident_id=incident.pk, client=client)
    (annotation,) = grafana.annotations.values()
    assert annotation["tags"] == [TAG, incident.key, "severity:critical", "service:payment"]
    assert annotation["time"] == int(incident.started_at.timestamp() * 1000) == annotation["timeEnd"]

    assert sync_incident_annotation(incident_id=incident.pk, client=client) == annotation_id  # a retry changes nothing
    assert [m for m, _ in grafana.requests].count("POST") == 1 and "PATCH" not in [m for m, _ in grafana.requests]

    services.transition_incident(incident=incident, to=Status.RESOLVED, user=responder)
    incident.refresh_from_db()
    sync_incident_annotation(incident_id=incident.pk, client=client)
    assert grafana.annotations[annotation_id]["timeEnd"] == int(incident.resolved_at.timestamp() * 1000)
    assert "resolved" in grafana.annotations[annotation_id]["text"]

    services.transition_incident(incident=incident, to=Status.OPEN, user=responder)
    sync_incident_annotation(incident_id=incident.pk, client=client)
    assert len(grafana.annotations) == 1
    assert grafana.annotations[annotation_id]["timeEnd"] == grafana.annotations[annotation_id]["time"]


def test_unconfigured_grafana_is_skipped():
    incident = services.create_incident(title="x", severity="low")
    assert sync_incident_annotation(incident_id=incident.pk, client=GrafanaClient("")) is None


def test_the_task_posts_the_incidents_annotation_to_grafana(grafana, settings):
    from incidents.tasks import sync_grafana_annotation

    settings.GRAFANA_URL = f"http://127.0.0.1:{grafana.server_address[1]}"
    settings.GRAFANA_TOKEN = "test-token"
    incident = services.create_incident(title="Checkout down", severity="high",
                                        primary_service=ServiceFactory(slug="checkout"))
    assert grafana.posted == []  # the service queues the task after commit; here the test runs it
    assert sync_grafana_annotation.apply(args=[incident.pk]).successful()

    (post,) = grafana.posted
    assert post["path"] == "/api/annotations"
    assert post["headers"]["Authorization"] == "Bearer test-token"
    body = post["body"]
    documented = set(json.loads((GRAFANA_FIXTURES / "annotations-create-request.json").read_text()))
    assert {"time", "tags", "text"} <= set(body) <= documented, body
    assert body["tags"] == [TAG, incident.key, "severity:high", "service:checkout"]
    assert body["time"] == int(incident.started_at.timestamp() * 1000)
    assert "Checkout down" in body["text"] and incident.key in body["text"]


def test_incident_services_keep_the_annotation_in_step(grafana, responder, settings, django_capture_on_commit_callbacks):
    settings.GRAFANA_URL = f"http://127.0.0.1:{grafana.server_address[1]}"
    settings.GRAFANA_TOKEN = "test-token"
    with django_capture_on_commit_callbacks(execute=True):
        incident = services.create_incident(title="Checkout down", severity="high")
    (annotation,) = grafana.annotations.values()
    assert incident.key in annotation["tags"] and annotation["timeEnd"] == annotation["time"]
    with django_capture_on_commit_callbacks(execute=True):
        services.transition_incident(incident=incident, to=Status.RESOLVED, user=responder)
    incident.refresh_from_db()
    assert annotation["timeEnd"] == int(incident.resolved_at.timestamp() * 1000)
    with django_capture_on_commit_callbacks(execute=True):
        services.add_comment(incident=incident, user=responder, message="no annotation change for comments")
    assert [m for m, _ in grafana.requests].count("PATCH") == 1


def test_title_severity_and_primary_service_changes_reach_the_annotation(grafana, responder, settings,
                                                                          django_capture_on_commit_callbacks):
    settings.GRAFANA_URL = f"http://127.0.0.1:{grafana.server_address[1]}"
    settings.GRAFANA_TOKEN = "test-token"
    frontend, payment = ServiceFactory(slug="frontend"), ServiceFactory(slug="payment")
    frontend.depends_on.add(payment)
    with django_capture_on_commit_callbacks(execute=True):
        incident = services.open_or_update_incident(fingerprint="f", title="Errors on frontend", severity="medium",
                                                    service=frontend).incident
    (annotation,) = grafana.annotations.values()
    assert "service:frontend" in annotation["tags"] and "severity:medium" in annotation["tags"]

    # Detection: a more severe alert on what the frontend calls raises the severity and moves the primary.
    with django_capture_on_commit_callbacks(execute=True):
        services.open_or_update_incident(fingerprint="f", title="Errors on payment", severity="critical", service=payment)
    assert "service:payment" in annotation["tags"] and "severity:critical" in annotation["tags"]
    assert "Errors on payment" in annotation["text"]

    # A responder's edit of the title; a summary edit is not shown on the annotation and sends nothing.
    with django_capture_on_commit_callbacks(execute=True):
        services.update_incident(incident=incident, user=responder, title="Payments failing")
    assert "Payments failing" in annotation["text"]
    patches = [m for m, _ in grafana.requests].count("PATCH")
    with django_capture_on_commit_callbacks(execute=True):
        services.update_incident(incident=incident, user=responder, summary="Card processor timeouts")
    assert [m for m, _ in grafana.requests].count("PATCH") == patches
