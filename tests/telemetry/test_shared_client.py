"""The shared client is found from the configuration's values, not by building a client to compare.

Rule evaluation asks for `PrometheusClient.shared()` every time; building a probe client (session,
breaker) per evaluation only to throw it away was the defect.
"""
from __future__ import annotations

from types import SimpleNamespace

import pytest

from detection import services as detection
from detection.models import DetectionRule, RuleHealth, RuleKind
from reliability_studio.telemetry.kubernetes import KubernetesClient
from reliability_studio.telemetry.prometheus import PrometheusClient

REFUSED = "http://127.0.0.1:9"  # the discard port: nothing listens


@pytest.fixture
def constructions(monkeypatch):
    """The base URL of every PrometheusClient built (the real constructor still runs)."""
    built: list[str] = []
    real = PrometheusClient.__init__

    def counting(self, *args, **kwargs):
        real(self, *args, **kwargs)
        built.append(self.base_url)

    monkeypatch.setattr(PrometheusClient, "__init__", counting)
    return built


@pytest.mark.django_db
def test_rule_evaluation_builds_no_client_until_the_configuration_changes(fixture_server, settings, constructions):
    settings.PROMETHEUS_URL, settings.TELEMETRY_RETRIES = fixture_server.url, 0
    rule = DetectionRule.objects.create(name="Up", kind=RuleKind.THRESHOLD, query="up", threshold=0.5,
                                        for_seconds=0, recovery_hold_seconds=0)
    detection.evaluate_rule(rule=rule)  # may build the first client of this configuration
    constructions.clear()
    for _ in range(5):
        detection.evaluate_rule(rule=rule)
    rule.refresh_from_db()
    assert constructions == [] and rule.health != RuleHealth.UNKNOWN, rule.last_error

    settings.PROMETHEUS_URL = REFUSED  # a change is noticed at the next evaluation
    detection.evaluate_rule(rule=rule)
    detection.evaluate_rule(rule=rule)
    rule.refresh_from_db()
    assert constructions == [REFUSED] and rule.health == RuleHealth.UNKNOWN

    settings.PROMETHEUS_URL = fixture_server.url  # back: the first client (and its breaker) again
    constructions.clear()
    detection.evaluate_rule(rule=rule)
    rule.refresh_from_db()
    assert constructions == [] and rule.health != RuleHealth.UNKNOWN


def test_any_setting_the_client_reads_is_part_of_its_configuration(constructions):
    base = {"PROMETHEUS_URL": "http://prom-a:9090", "PROMETHEUS_TOKEN": "x", "TELEMETRY_RETRIES": 1}
    first = PrometheusClient.shared(SimpleNamespace(**base))
    assert PrometheusClient.shared(SimpleNamespace(**base)) is first and len(constructions) == 1
    for change in ({"PROMETHEUS_TOKEN": "y"}, {"PROMETHEUS_TENANT": "team-b"}, {"TELEMETRY_RETRIES": 3},
                   {"TELEMETRY_BREAKER_FAIL_MAX": 9}):
        other = PrometheusClient.shared(SimpleNamespace(**{**base, **change}))
        assert other is not first, change
    assert PrometheusClient.shared(SimpleNamespace(**base)) is first and len(constructions) == 5
    namespaces = SimpleNamespace(KUBERNETES_NAMESPACES="shop")
    assert KubernetesClient.shared(namespaces) is KubernetesClient.shared(SimpleNamespace(KUBERNETES_NAMESPACES="shop"))
    assert KubernetesClient.shared(namespaces) is not KubernetesClient.shared(SimpleNamespace())
