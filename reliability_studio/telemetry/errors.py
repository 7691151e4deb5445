"""Error types shared by every telemetry source.

One exception class per source so callers can ``except PrometheusError`` without
catching Loki failures, and one common base (``TelemetryError``) for code that
just needs to degrade gracefully when *any* backend is unhealthy.
"""

from __future__ import annotations

# Error kinds produced by the transport layer. Prometheus adds its own
# ``errorType`` values (bad_data, execution, timeout, canceled, internal,
# unavailable, not_found, not_acceptable) as kinds too.
KIND_TIMEOUT = "timeout"
KIND_CONNECTION = "connection"
KIND_HTTP = "http"
KIND_BAD_RESPONSE = "bad_response"
KIND_CIRCUIT_OPEN = "circuit_open"
KIND_NOT_CONFIGURED = "not_configured"
KIND_NOT_FOUND = "not_found"
# The backend refused the query itself (HTTP 400: LogQL/TraceQL parse error, a
# log selector sent as an instant query, ...), or the client refused it before
# sending. Same name as Prometheus' ``errorType`` so one check covers all three.
KIND_BAD_DATA = "bad_data"


class TelemetryError(Exception):
    """A failure talking to a telemetry backend.

    Attributes:
        source: short backend name ("prometheus", "loki", ...).
        status: HTTP status code, or None when no response was received.
        kind: machine-readable category (see the ``KIND_*`` constants).
        message: human-readable text, never containing credentials.
        retryable: whether the failure is transient (5xx, timeout, connection);
            only those are retried and counted by the circuit breaker.
    """

    source = "telemetry"

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        kind: str = KIND_HTTP,
        source: str | None = None,
        retryable: bool = False,
    ) -> None:
        if source is not None:
            self.source = source
        self.message = message
        self.status = status
        self.kind = kind
        self.retryable = retryable
        super().__init__(message)

    def __str__(self) -> str:
        status = f" HTTP {self.status}" if self.status else ""
        return f"{self.source} {self.kind}{status}: {self.message}"

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(source={self.source!r}, kind={self.kind!r}, "
            f"status={self.status!r}, message={self.message!r})"
        )


class PrometheusError(TelemetryError):
    source = "prometheus"


class LokiError(TelemetryError):
    source = "loki"


class TempoError(TelemetryError):
    source = "tempo"


class KubernetesError(TelemetryError):
    source = "kubernetes"


class GrafanaError(TelemetryError):
    source = "grafana"
