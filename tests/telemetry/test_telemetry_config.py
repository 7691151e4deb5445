"""Building clients from (Django-style) settings and sharing them per process."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from reliability_studio.telemetry import PrometheusError, TempoError
from reliability_studio.telemetry.config import get_setting
from reliability_studio.telemetry.grafana import GrafanaClient
from reliability_studio.telemetry.kubernetes import KubernetesClient
from reliability_studio.telemetry.loki import LokiClient
from reliability_studio.telemetry.prometheus import PrometheusClient
from reliability_studio.telemetry.tempo import TempoClient


def test_defaults_without_any_setting():
    empty = SimpleNamespace()
    prom = PrometheusClient.from_settings(empty)
    assert prom.base_url == "http://127.0.0.1:9090"
    assert prom.timeout == (10.0, 10.0)
    assert prom.resilience.retries == 2
    assert prom.resilience.breaker.fail_max == 5
    assert prom.resilience.breaker.reset_timeout == 30.0
    for cls in (LokiClient, TempoClient, GrafanaClient):
        assert not cls.from_settings(empty).configured


def test_values_from_settings():
    settings = SimpleNamespace(
        LOKI_URL="http://loki:3100/", LOKI_TOKEN="tok", LOKI_TENANT="team-a",
        TELEMETRY_TIMEOUT_SECONDS="2.5", TELEMETRY_RETRIES="4",
        TELEMETRY_BREAKER_FAIL_MAX=3, TELEMETRY_BREAKER_RESET_SECONDS=7,
        KUBERNETES_NAMESPACES="shop, payments", KUBERNETES_IN_CLUSTER="false",
        KUBERNETES_KUBECONFIG="/nonexistent",
    )
    loki = LokiClient.from_settings(settings)
    assert loki.base_url == "http://loki:3100"
    assert loki.auth_kind == "bearer" and "tok" not in repr(loki)
    assert loki.session.headers["X-Scope-OrgID"] == "team-a"
    assert loki.timeout == (2.5, 2.5) and loki.resilience.retries == 4
    assert loki.resilience.breaker.fail_max == 3
    kube = KubernetesClient.from_settings(settings)
    assert kube.namespaces == ["shop", "payments"] and not kube.in_cluster
    assert kube.kubeconfig == "/nonexistent"


def test_django_settings_are_read(settings):
    settings.TEMPO_URL = "http://tempo.example.internal:3200"
    settings.TELEMETRY_RETRIES = 0
    assert get_setting("TEMPO_URL") == "http://tempo.example.internal:3200"
    tempo = TempoClient.from_settings()
    assert tempo.base_url == "http://tempo.example.internal:3200"
    assert tempo.resilience.retries == 0


def test_unconfigured_source_error_names_the_setting():
    tempo = TempoClient.from_settings(SimpleNamespace(TEMPO_URL=""))
    with pytest.raises(TempoError, match="tempo is not configured \\(set TEMPO_URL\\)"):
        tempo.search("{}")
    with pytest.raises(PrometheusError, match="not configured"):
        PrometheusClient("").query("up")


def test_shared_instance_keeps_breaker_state_per_configuration():
    a = SimpleNamespace(PROMETHEUS_URL="http://prom-a:9090", PROMETHEUS_TOKEN="x")
    b = SimpleNamespace(PROMETHEUS_URL="http://prom-b:9090", PROMETHEUS_TOKEN="x")
    first = PrometheusClient.shared(a)
    assert PrometheusClient.shared(a) is first
    assert PrometheusClient.shared(b) is not first
    rotated = SimpleNamespace(PROMETHEUS_URL="http://prom-a:9090", PROMETHEUS_TOKEN="y")
    assert PrometheusClient.shared(rotated) is not first  # token rotation -> new client
    assert KubernetesClient.shared(SimpleNamespace()) is KubernetesClient.shared(SimpleNamespace())
