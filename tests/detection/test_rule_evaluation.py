"""Rules evaluated against a real Prometheus: threshold and anomaly kinds, query validation, and a
Prometheus that stops mid-run (rules go `unknown`, nothing opens, evaluation recovers)."""
import os
import signal
import time

import pytest
from django.core.exceptions import ValidationError
from rest_framework.test import APIClient

from detection import services
from detection.models import Alert, AlertState, DetectionRule, RuleHealth, RuleKind
from incidents.models import Incident, Severity

from ..support.prometheus import prometheus_available, start_prometheus

pytestmark = [
    pytest.mark.slow,
    pytest.mark.django_db,
    pytest.mark.skipif(not prometheus_available(), reason="the Debian package prometheus is not installed"),
]


@pytest.fixture(scope="module")
def prometheus():
    handle = start_prometheus([], scrape_interval="1s")
    handle.wait_for_series('prometheus_build_info')
    yield handle
    handle.stop()


@pytest.fixture
def source(prometheus, settings):
    settings.PROMETHEUS_URL = prometheus.url
    settings.TELEMETRY_TIMEOUT_SECONDS = 1
    settings.TELEMETRY_RETRIES = 0
    settings.TELEMETRY_BREAKER_FAIL_MAX = 3
    settings.TELEMETRY_BREAKER_RESET_SECONDS = 1
    return prometheus


def make_rule(**fields):
    defaults = dict(name="build info", kind=RuleKind.THRESHOLD, query="prometheus_build_info", comparator=">",
                    threshold=0, severity=Severity.HIGH, for_seconds=0, recovery_hold_seconds=0)
    rule = DetectionRule(**(defaults | fields))
    services.validate_rule(rule)
    rule.save()
    return rule


def test_threshold_rule_fires_and_opens_incident(source):
    rule = make_rule()
    services.evaluate_rule(rule=rule)
    rule.refresh_from_db()
    assert rule.health == RuleHealth.OK and rule.last_value == 1.0 and rule.last_error == ""
    alert = Alert.objects.get(rule=rule)
    assert alert.state == AlertState.FIRING and alert.labels["job"] == "prometheus"
    assert Incident.objects.get().title.startswith("build info")


def test_threshold_rule_that_does_not_hold_stays_inactive(source):
    rule = make_rule(comparator="<", threshold=0.5, query='up{job="prometheus"}')
    services.evaluate_rule(rule=rule)
    rule.refresh_from_db()
    assert rule.health == RuleHealth.OK and rule.last_value == 1.0  # the series was read...
    assert not Alert.objects.filter(rule=rule).exists()  # ...and a quiet series costs no row
    assert Incident.objects.count() == 0


def test_anomaly_rule_evaluates_a_range(source):
    rule = make_rule(kind=RuleKind.ANOMALY, query='up{job="prometheus"}',
                     threshold=None, baseline_window_seconds=120, evaluation_interval_seconds=1)
    services.evaluate_rule(rule=rule)
    rule.refresh_from_db()
    assert rule.health == RuleHealth.OK, rule.last_error
    # A young series has too little history to judge: read, but not an anomaly.
    assert rule.last_value == 1.0
    assert not Alert.objects.filter(rule=rule).exists()


def test_bad_query_is_refused_with_prometheus_message(source):
    with pytest.raises(ValidationError) as refused:
        make_rule(query="sum(rate(http_requests_total[5m])")
    message = refused.value.message_dict["query"][0]
    assert "the source refused this query" in message and "unclosed left parenthesis" in message
    assert not DetectionRule.objects.exists()


def test_api_refuses_bad_query_with_400(source, admin_user):
    client = APIClient()
    client.force_authenticate(admin_user)
    body = {"name": "broken", "kind": "threshold", "query": "rate(x[5m]", "threshold": 1}
    response = client.post("/api/v1/rules/", body, format="json")
    assert response.status_code == 400 and "query" in response.json()["errors"]
    assert not DetectionRule.objects.exists()
    body["query"] = "rate(prometheus_http_requests_total[5m])"
    created = client.post("/api/v1/rules/", body, format="json")
    assert created.status_code == 201, created.content
    status = client.get("/api/v1/rules/").json()["results"][0]
    assert status["health"] == "never" and status["firing"] == 0


def test_prometheus_stopped_mid_run_sets_unknown_opens_nothing_and_recovers(source):
    rule = make_rule(comparator="<", threshold=0.5, query='up{job="prometheus"}')
    services.evaluate_rule(rule=rule)
    os.kill(source.process.pid, signal.SIGSTOP)  # Prometheus stops answering
    try:
        for _ in range(5):  # enough failures to open the breaker too
            services.evaluate_rule(rule=rule)
        rule.refresh_from_db()
        assert rule.health == RuleHealth.UNKNOWN
        assert "prometheus" in rule.last_error.lower()
        assert Incident.objects.count() == 0
        assert not Alert.objects.filter(rule=rule).exists()
    finally:
        os.kill(source.process.pid, signal.SIGCONT)
    time.sleep(1.2)  # the breaker half-opens after its reset timeout
    services.evaluate_rule(rule=rule)
    rule.refresh_from_db()
    assert rule.health == RuleHealth.OK and rule.last_error == ""
