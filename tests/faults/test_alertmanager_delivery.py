"""A real Alertmanager, fed by a real Prometheus, delivers to the intake webhook with its bearer
token: firing, then resolved, end to end (daphne and a Celery worker).

Prometheus scrapes a small exporter the test controls (`rs_fault_probe`); an alerting rule fires
while the probe is 1 and resolves when it goes back to 0. Alertmanager groups by alertname with
short timers. Its two alerts carry a `service` label that is not in the catalog: one Alertmanager
group is one problem, so they must become one incident (grouping by the delivery's `groupKey`).
"""
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.db import connection

from detection.models import Alert, AlertSource, AlertSourceKind, AlertState
from incidents.models import Incident

from ..servers import CeleryWorker, Daphne, server_env
from ..support.alertmanager import require_alertmanager, start_alertmanager
from ..support.prometheus import prometheus_available, start_prometheus
from .conftest import wait_for

pytestmark = [
    pytest.mark.slow,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(not prometheus_available(), reason="the Debian package prometheus is not installed"),
]
SHARDS = ("a", "b")


class Probe:
    """A /metrics endpoint serving `rs_fault_probe{shard=...}` with values the test sets."""

    def __init__(self):
        self.values = {shard: 0 for shard in SHARDS}
        probe = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                body = "# TYPE rs_fault_probe gauge\n" + "".join(
                    f'rs_fault_probe{{shard="{shard}"}} {value}\n' for shard, value in probe.values.items())
                data = body.encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.address = f"127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def set(self, value: int) -> None:
        self.values = {shard: value for shard in SHARDS}

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def delivered_stack(tmp_path, cleanup):
    """Probe → Prometheus (rule) → Alertmanager → daphne intake → Celery worker."""
    require_alertmanager()
    source = AlertSource(name="alertmanager", kind=AlertSourceKind.ALERTMANAGER)
    token = source.set_new_token()
    source.save()
    env = server_env(connection.settings_dict["NAME"])
    web = Daphne(env)
    cleanup(web.stop)
    worker = CeleryWorker(env, concurrency=2)
    cleanup(worker.stop)
    alertmanager = start_alertmanager(f"{web.url}/api/v1/alerts/alertmanager", token, group_by=["alertname"],
                                      group_wait="1s", group_interval="2s", resolve_timeout="5s")
    cleanup(alertmanager.stop)
    probe = Probe()
    cleanup(probe.stop)
    rules = tmp_path / "rules.yml"
    rules.write_text(json.dumps({"groups": [{"name": "fault-tests", "interval": "1s", "rules": [{
        "alert": "ProbeDown", "expr": "rs_fault_probe > 0", "for": "0s",
        # `ghost` is not in the catalog: grouping cannot rely on a known service.
        "labels": {"severity": "critical", "service": "ghost"},
        "annotations": {"summary": "probe {{ $labels.shard }} is down"},
    }]}]}))
    prometheus = start_prometheus([probe.address], scrape_interval="1s", job="probe", rule_files=[str(rules)],
                                  alertmanagers=[alertmanager.address])
    cleanup(prometheus.stop)
    prometheus.wait_for_series("rs_fault_probe")
    return probe, alertmanager, prometheus


def _states():
    return sorted(Alert.objects.values_list("state", flat=True))


def test_real_alertmanager_delivers_firing_then_resolved_and_one_group_is_one_incident(delivered_stack):
    probe, alertmanager, prometheus = delivered_stack
    probe.set(1)
    wait_for(lambda: _states() == [AlertState.FIRING] * 2, 45,
             f"Alertmanager to deliver two firing alerts\n{alertmanager.log_tail()}\n{prometheus.log_tail()}")
    alerts = list(Alert.objects.select_related("source").order_by("labels__shard"))
    assert [a.labels["shard"] for a in alerts] == list(SHARDS)
    assert all(a.source.kind == AlertSourceKind.ALERTMANAGER for a in alerts)
    assert all(a.annotations["summary"] == f"probe {a.labels['shard']} is down" for a in alerts)
    assert all(a.severity == "critical" and a.incident_id for a in alerts)
    assert all(a.service_id is None for a in alerts)  # `ghost` is not a catalog service

    probe.set(0)
    wait_for(lambda: _states() == [AlertState.RESOLVED] * 2, 45,
             f"Alertmanager to deliver the resolution\n{alertmanager.log_tail()}")
    for alert in Alert.objects.all():
        messages = list(alert.incident.timeline.values_list("message", flat=True))
        assert any(m.startswith("FIRING: ProbeDown") for m in messages)
        assert any(m.startswith("RESOLVED: ProbeDown") for m in messages), messages

    # Last, so that the delivery itself is proven first: the two alerts of one Alertmanager group
    # (one groupKey) whose service is not in the catalog are one problem, hence one incident.
    assert Alert.objects.values("incident").distinct().count() == 1, \
        "one Alertmanager group opened several incidents (grouping by groupKey)"
    assert Incident.objects.count() == 1, [i.title for i in Incident.objects.all()]
