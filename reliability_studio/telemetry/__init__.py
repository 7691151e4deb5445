"""Telemetry clients shared by all apps: Prometheus, Loki, Tempo, Kubernetes, Grafana.

Every client shares the same resilience policy (timeouts, bounded retries on
idempotent calls, one circuit breaker per client instance) and raises one
``TelemetryError`` subclass per source. Import the clients from their modules,
e.g. ``from reliability_studio.telemetry.prometheus import PrometheusClient``.
"""

from .errors import (
    GrafanaError,
    KubernetesError,
    LokiError,
    PrometheusError,
    TelemetryError,
    TempoError,
)

__all__ = [
    "GrafanaError",
    "KubernetesError",
    "LokiError",
    "PrometheusError",
    "TelemetryError",
    "TempoError",
]
