"""Outgoing calls to configured URLs (webhooks, data sources) never reach link-local or cloud metadata
addresses unless allowed: refused when saved (a clear 400 / load error) and when the connection is
opened (DNS rebinding), before any connection attempt. Loopback and private addresses stay allowed."""
from __future__ import annotations

import contextlib
import http.server
import socket
import sys
import threading

import pytest
import requests
from rest_framework.test import APIClient

from reliability_studio import outbound
from reliability_studio.access import Role
from reliability_studio.telemetry.errors import PrometheusError
from reliability_studio.telemetry.prometheus import PrometheusClient

METADATA_URLS = ["http://169.254.169.254/latest/meta-data/", "http://[fd00:ec2::254]/latest/meta-data/",
                 "http://100.100.100.200/latest/meta-data/", "http://[::ffff:169.254.169.254]/",
                 "http://[fe80::1]/", "http://metadata.google.internal/computeMetadata/v1/",
                 "http://169.254.170.2/v2/credentials"]

_connects: list | None = None


def _audit(event, args):
    if event == "socket.connect" and _connects is not None:
        _connects.append(args[1])


sys.addaudithook(_audit)  # audit hooks cannot be removed; it records only inside connections_made()


@contextlib.contextmanager
def connections_made():
    """Every address a socket of this process tried to connect to inside the block."""
    global _connects
    _connects = seen = []
    try:
        yield seen
    finally:
        _connects = None


@pytest.fixture
def loopback_server():
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(b'{"status":"success","data":{"resultType":"vector","result":[]}}')

        do_POST = do_GET

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()


@pytest.fixture
def rebinding(monkeypatch):
    """A name that does not resolve when the URL is saved and resolves to the metadata address when
    the call is made (DNS rebinding). The resolver is the one stand-in: no real DNS here."""
    real = socket.getaddrinfo
    answers = {"rebind.example.test": None}

    def getaddrinfo(host, port, *args, **kwargs):
        if host in answers:
            if answers[host] is None:
                raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (answers[host], port))]
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)

    def rebind(address):
        answers["rebind.example.test"] = address

    return rebind


def test_loopback_and_private_addresses_stay_allowed(loopback_server):
    session = outbound.guard(requests.Session())
    with connections_made() as seen:
        assert session.get(loopback_server + "/api/v1/query", timeout=5).status_code == 200
    assert seen and seen[0][0] == "127.0.0.1"
    for url in ("http://10.0.0.5:9090", "http://192.168.1.10/hook", "http://localhost:9090", "http://prometheus:9090"):
        outbound.check_url(url)  # no error


@pytest.mark.parametrize("url", METADATA_URLS)
def test_metadata_addresses_are_refused_without_a_connection_attempt(url):
    session = outbound.guard(requests.Session())
    with pytest.raises(outbound.OutboundURLRefused, match="link-local or metadata"):
        outbound.check_url(url)
    with connections_made() as seen, pytest.raises(outbound.OutboundURLRefused):
        session.get(url, timeout=5)
    assert seen == []


def test_a_name_rebound_to_the_metadata_address_is_refused_at_connect_time(rebinding):
    url = "http://rebind.example.test/latest/meta-data/"
    outbound.check_url(url)  # does not resolve yet: accepted at save time
    rebinding("169.254.169.254")
    with connections_made() as seen, pytest.raises(outbound.OutboundURLRefused, match="169.254.169.254"):
        outbound.guard(requests.Session()).get(url, timeout=5)
    assert seen == []


def test_the_allow_list_and_the_switch(settings):
    settings.OUTBOUND_ALLOWED_HOSTS = ["169.254.10.0/24", "metadata.google.internal"]
    outbound.check_url("http://169.254.10.7/")
    outbound.check_url("http://metadata.google.internal/")
    with pytest.raises(outbound.OutboundURLRefused):
        outbound.check_url("http://169.254.169.254/")
    settings.OUTBOUND_ALLOWED_HOSTS = []
    settings.OUTBOUND_ALLOW_LINK_LOCAL = True
    outbound.check_url("http://169.254.169.254/")


def test_a_data_source_on_loopback_is_queried(loopback_server):
    client = PrometheusClient(loopback_server, retries=0)
    with connections_made() as seen:
        result = client.query("up")
    assert result.result_type == "vector" and result.samples == [] and seen


def test_a_data_source_at_the_metadata_address_is_refused_and_not_retried():
    client = PrometheusClient("http://169.254.169.254:9090", retries=3, timeout=2)
    with connections_made() as seen, pytest.raises(PrometheusError) as error:
        client.query("up")
    assert seen == []
    assert error.value.kind == "connection" and not error.value.retryable
    assert "link-local or metadata" in str(error.value)


def test_a_remediation_webhook_to_the_metadata_address_is_refused_when_loaded(tmp_path, db):
    from remediation.runbooks import RunbookError, parse_file

    path = tmp_path / "hook.yaml"
    path.write_text('runbooks:\n  - name: hook\n    steps: [{action: webhook, params: {url: "http://169.254.169.254/x"}}]\n')
    with pytest.raises(RunbookError, match="link-local or metadata") as error:
        parse_file(path)
    assert "hook.yaml" in str(error.value)


def test_a_remediation_webhook_rebound_to_the_metadata_address_is_refused_when_run(rebinding, settings):
    from remediation.actions.base import ActionError
    from remediation.actions.webhook import Webhook

    settings.REMEDIATION_WEBHOOK_SECRET = "secret"
    params = {"url": "http://rebind.example.test/hook", "method": "POST", "body": {}, "timeout": 2, "retries": 2,
              "secret_env": ""}
    Webhook(name="webhook-test", label="t", params={}).check(params)  # accepted: the name does not resolve yet
    rebinding("169.254.169.254")
    with connections_made() as seen, pytest.raises(ActionError, match="refused"):
        Webhook(name="webhook-test", label="t", params={}).execute(params, action_id=1)
    assert seen == []


def test_a_notification_destination_at_a_metadata_name_is_a_400(make_user, db):
    from notifications.models import Destination

    client = APIClient()
    client.force_authenticate(make_user(Role.ADMIN))
    response = client.post("/api/v1/notifications/destinations/",
                           {"name": "hook", "kind": "webhook", "url": "http://metadata.google.internal/hook",
                            "secret": "0123456789abcdef0123"}, format="json")
    assert response.status_code == 400, response.content
    assert "metadata" in response.json()["message"]
    assert not Destination.objects.exists()


def test_a_notification_rebound_to_the_metadata_address_is_refused_at_send_time(rebinding, settings):
    from notifications import outbound as notifications_outbound

    settings.NOTIFICATIONS_ALLOW_LOOPBACK = True
    rebinding("169.254.169.254")
    with connections_made() as seen, pytest.raises(outbound.OutboundURLRefused):
        # check_url's own resolution is skipped here on purpose: the connection's check must hold alone.
        notifications_outbound._session().post("http://rebind.example.test/hook", data=b"{}", timeout=2)
    assert seen == []
