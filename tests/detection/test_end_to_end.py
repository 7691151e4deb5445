"""The real stack: demo shop, Prometheus, Celery worker and beat, daphne.

chaos fail → the incident opens by itself → chaos recover → it resolves by itself; and the same
Alertmanager delivery posted 50 times at once becomes one alert and one incident.
"""
import json
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests
from django.core.management import call_command
from django.db import connection

from detection.chaos import ChaosClient
from detection.models import Alert, AlertSource, AlertSourceKind, DetectionRule, RuleKind
from incidents.models import Incident, Severity, Status

from ..servers import CeleryBeat, CeleryWorker, Daphne, server_env
from ..support.prometheus import prometheus_available, start_prometheus
from ..support.shop import start_shop

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "alert-payloads"


def wait_for(predicate, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.5)
    pytest.fail(f"timed out after {timeout}s waiting for {what}")


@pytest.mark.skipif(not prometheus_available(), reason="the Debian package prometheus is not installed")
def test_chaos_fail_opens_incident_and_recover_resolves_it(tmp_path):
    shop = start_shop(tmp_path, rps=30)
    prometheus = start_prometheus([f"127.0.0.1:{shop.port(s)}" for s in ("frontend", "checkout", "payment")],
                                  scrape_interval="1s", job="shop")
    processes = []
    try:
        call_command("load_catalog", "demo/catalog.yaml", verbosity=0)
        DetectionRule.objects.create(
            name="High error ratio", kind=RuleKind.THRESHOLD, severity=Severity.CRITICAL, threshold=0.05,
            query='sum by (service) (rate(http_requests_total{code=~"5.."}[5s])) '
                  '/ sum by (service) (rate(http_requests_total[5s]))',
            for_seconds=2, recovery_hold_seconds=4, evaluation_interval_seconds=1,
        )
        env = server_env(connection.settings_dict["NAME"], PROMETHEUS_URL=prometheus.url,
                         DEMO_CONTROL_URL=shop.control_url, DETECTION_AUTO_RESOLVE_HOLD="critical=3")
        processes += [CeleryWorker(env, concurrency=2), CeleryBeat(env, str(tmp_path / "beat-schedule"))]
        prometheus.wait_for_series('http_requests_total{service="payment"}')
        time.sleep(8)  # a steady baseline first: nothing must open
        assert Incident.objects.count() == 0

        chaos = ChaosClient(shop.control_url)
        chaos.fail("payment", 0.5)
        injected = time.monotonic()
        incident = wait_for(lambda: Incident.objects.filter(status__in=["open", "investigating"]).first(), 45,
                            "the incident to open")
        detected_after = time.monotonic() - injected
        assert incident.source == "rule" and incident.severity == Severity.CRITICAL
        # The callers' alerts can fire a moment before payment's (they are evaluated in one cycle,
        # series by series); payment joins the same incident and, being what they call, becomes
        # its primary service.
        wait_for(lambda: Incident.objects.get(pk=incident.pk).primary_service.slug == "payment", 20,
                 "payment to become the incident's primary service")

        chaos.recover()
        wait_for(lambda: Incident.objects.get(pk=incident.pk).status == Status.RESOLVED, 60,
                 "the incident to resolve by itself")
        messages = list(incident.timeline.values_list("message", flat=True))
        assert any(m.startswith("FIRING: High error ratio on payment") for m in messages)
        assert any(m.startswith("RESOLVED: High error ratio") for m in messages)
        assert any("every alert stayed resolved" in m for m in messages)
        assert Incident.objects.count() == 1, "one problem, one incident"
        print(f"detected {detected_after:.1f}s after injection")
    finally:
        for process in processes:
            process.stop()
        prometheus.stop()
        shop.stop()


def test_same_alertmanager_alert_posted_50_times_concurrently_is_one_alert_one_incident():
    source = AlertSource(name="am", kind=AlertSourceKind.ALERTMANAGER)
    token = source.set_new_token()
    source.save()
    env = server_env(connection.settings_dict["NAME"])
    web, worker = Daphne(env), CeleryWorker(env, concurrency=4)
    body = json.loads((FIXTURES / "alertmanager-webhook-v4-firing.json").read_text())
    body["alerts"] = body["alerts"][:1]
    try:
        def post(_):
            return requests.post(f"{web.url}/api/v1/alerts/alertmanager", json=body, timeout=30,
                                 headers={"Authorization": f"Bearer {token}"}).status_code

        with ThreadPoolExecutor(max_workers=50) as pool:
            codes = list(pool.map(post, range(50)))
        assert codes == [202] * 50
        wait_for(lambda: Alert.objects.filter(received_count=50).exists(), 60, "all 50 deliveries to be processed")
    finally:
        worker.stop()
        web.stop()
    assert Alert.objects.count() == 1
    assert Incident.objects.count() == 1
    incident = Incident.objects.get()
    assert incident.timeline.filter(message__startswith="FIRING").count() == 1
