"""The incidents' gauge on /metrics: incidents by status and severity, read from Postgres at scrape
time. Registered by IncidentsConfig.ready() into reliability_studio.observability's registry."""
from prometheus_client.core import GaugeMetricFamily

from .selectors import incident_counts_by_status_and_severity


class IncidentCountCollector:
    def collect(self):
        gauge = GaugeMetricFamily("rs_incidents", "Incidents by status and severity.", labels=["status", "severity"])
        for (status, severity), count in incident_counts_by_status_and_severity().items():
            gauge.add_metric([status, severity], count)
        yield gauge
