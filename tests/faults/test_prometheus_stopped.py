"""Prometheus killed mid-run on the real stack (demo shop, Prometheus, Celery worker and beat).

While it is down every rule becomes `unknown` with the source's error, a live `detection.updated`
event says so, and nothing opens: not even the rule that fires when a scrape target is down (the
monitoring being down is not the service being down). Prometheus comes back on the same port and
the rules return to `ok` by themselves, still without an incident.
"""
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.db import connection
from django.utils import timezone

from detection.models import Alert, AlertState, DetectionRule, RuleHealth, RuleKind
from incidents.models import Incident, Severity

from ..channel_listener import GroupListener
from ..servers import CeleryBeat, CeleryWorker, server_env
from ..support.prometheus import prometheus_available, start_prometheus
from ..support.shop import start_shop
from .conftest import wait_for

pytestmark = [
    pytest.mark.slow,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(not prometheus_available(), reason="the Debian package prometheus is not installed"),
]


def rules_with(health: str) -> bool:
    return not DetectionRule.objects.exclude(health=health).exists()


def test_prometheus_killed_makes_rules_unknown_opens_nothing_and_recovers_by_itself(tmp_path, cleanup):
    shop = start_shop(tmp_path, rps=10)
    cleanup(shop.stop)
    prometheus = start_prometheus([f"127.0.0.1:{shop.port(s)}" for s in ("frontend", "checkout", "payment")],
                                  scrape_interval="1s", job="shop")
    cleanup(prometheus.stop)
    call_command("load_catalog", "demo/catalog.yaml", verbosity=0)
    common = dict(kind=RuleKind.THRESHOLD, severity=Severity.CRITICAL, for_seconds=0, recovery_hold_seconds=2,
                  evaluation_interval_seconds=1)
    DetectionRule.objects.create(
        name="High error ratio", threshold=0.05, **common,
        query='sum by (service) (rate(http_requests_total{code=~"5.."}[5s]))'
              ' / sum by (service) (rate(http_requests_total[5s]))')
    DetectionRule.objects.create(name="Scrape target down", query='up{job="shop"}', comparator="<", threshold=1,
                                 **common)
    # Short client timeouts and a breaker that half-opens after 2 s keep the test short; the
    # behaviour is the same with the defaults (10 s timeout, 30 s reset), only slower.
    env = server_env(connection.settings_dict["NAME"], PROMETHEUS_URL=prometheus.url, TELEMETRY_RETRIES="0",
                     TELEMETRY_TIMEOUT_SECONDS="1", TELEMETRY_BREAKER_RESET_SECONDS="2")
    worker = CeleryWorker(env, concurrency=1)
    cleanup(worker.stop)
    beat = CeleryBeat(env, str(tmp_path / "beat-schedule"))
    cleanup(beat.stop)
    prometheus.wait_for_series('http_requests_total{service="payment"}')
    wait_for(lambda: rules_with(RuleHealth.OK), 40, "both rules to evaluate ok against the running Prometheus")

    with GroupListener("incidents.all") as listener:
        prometheus.kill()
        killed_at = timezone.now()
        wait_for(lambda: rules_with(RuleHealth.UNKNOWN), 30, "the rules to become unknown")
        # Several evaluation cycles against the dead source: a false incident would open here.
        evaluated_since = killed_at + timedelta(seconds=5)
        wait_for(lambda: not DetectionRule.objects.filter(last_evaluated_at__lt=evaluated_since).exists(), 30,
                 "5 s of evaluations against the stopped Prometheus")
        for rule in DetectionRule.objects.all():
            assert rule.health == RuleHealth.UNKNOWN and rule.last_error, rule.name
        assert Incident.objects.count() == 0
        assert not Alert.objects.filter(state__in=[AlertState.PENDING, AlertState.FIRING]).exists()
        unknown_events = [m for m in listener.wait(1, timeout=5)
                          if m["event"] == "detection.updated" and m["data"].get("health") == RuleHealth.UNKNOWN]
        assert {e["data"]["name"] for e in unknown_events} == {"High error ratio", "Scrape target down"}

    prometheus.restart()
    back_at = timezone.now()
    wait_for(lambda: rules_with(RuleHealth.OK), 40, "the rules to recover by themselves")
    wait_for(lambda: not DetectionRule.objects.filter(last_evaluated_at__lt=back_at + timedelta(seconds=3))
             .exists(), 30, "3 s of evaluations after the restart")
    assert rules_with(RuleHealth.OK) and not DetectionRule.objects.exclude(last_error="").exists()
    assert Incident.objects.count() == 0, "the outage of the monitoring opened an incident"
    assert not Alert.objects.filter(state__in=[AlertState.PENDING, AlertState.FIRING]).exists()
