"""Seed the default detection rules for the demo shop (idempotent: rules are matched by name).

Log and Kubernetes rules are created disabled unless their source is configured, so a stack
without Loki or a cluster shows them as available rather than as failing.
"""
from django.conf import settings
from django.core.management.base import BaseCommand

from detection import services
from detection.models import AnomalyMethod, Comparator, DetectionRule, KubernetesCondition, RuleKind
from incidents.models import Severity

SHOP = 'job="shop"'
DEFAULT_RULES = [
    dict(name="High error ratio", kind=RuleKind.THRESHOLD, severity=Severity.CRITICAL,
         query=f'sum by (service) (rate(http_requests_total{{{SHOP},code=~"5.."}}[30s])) '
               f'/ sum by (service) (rate(http_requests_total{{{SHOP}}}[30s]))',
         comparator=Comparator.GT, threshold=0.05, for_seconds=5, recovery_hold_seconds=20,
         evaluation_interval_seconds=2, description="More than 5 % of a service's requests fail."),
    dict(name="High p95 latency", kind=RuleKind.THRESHOLD, severity=Severity.HIGH,
         query=f"histogram_quantile(0.95, sum by (service, le) (rate(http_request_duration_seconds_bucket{{{SHOP}}}[30s])))",
         comparator=Comparator.GT, threshold=1.0, for_seconds=10, recovery_hold_seconds=20,
         evaluation_interval_seconds=2, description="p95 latency above 1 s."),
    dict(name="Service down", kind=RuleKind.THRESHOLD, severity=Severity.CRITICAL, query=f"up{{{SHOP}}}",
         comparator=Comparator.LT, threshold=1, for_seconds=5, recovery_hold_seconds=15,
         evaluation_interval_seconds=2, description="Prometheus cannot scrape the service."),
    dict(name="Request rate anomaly", kind=RuleKind.ANOMALY, severity=Severity.MEDIUM,
         query=f"sum by (service) (rate(http_requests_total{{{SHOP}}}[1m]))", anomaly_method=AnomalyMethod.ENSEMBLE,
         baseline_window_seconds=3600, for_seconds=30, recovery_hold_seconds=60, evaluation_interval_seconds=10,
         description="Traffic departs from its own recent and same-hour baseline."),
    dict(name="Error rate anomaly", kind=RuleKind.ANOMALY, severity=Severity.MEDIUM,
         query=f'sum by (service) (rate(http_requests_total{{{SHOP},code=~"5.."}}[1m]))',
         anomaly_method=AnomalyMethod.ENSEMBLE, baseline_window_seconds=3600, for_seconds=30,
         recovery_hold_seconds=60, evaluation_interval_seconds=10,
         description="Errors depart from their baseline (catches regressions below the ratio threshold)."),
    dict(name="Error log spike", kind=RuleKind.LOG_PATTERN, severity=Severity.HIGH,
         query='sum by (service) (count_over_time({app="shop"} |~ "(?i)error|timeout|exhausted" [1m]))',
         comparator=Comparator.GT, threshold=30, for_seconds=15, recovery_hold_seconds=60,
         evaluation_interval_seconds=10, description="Error-like log lines above 30 a minute."),
    dict(name="Crash loop", kind=RuleKind.KUBERNETES, severity=Severity.HIGH,
         kubernetes_condition=KubernetesCondition.CRASH_LOOP, for_seconds=0, recovery_hold_seconds=60,
         evaluation_interval_seconds=15, description="A container is in CrashLoopBackOff."),
]


class Command(BaseCommand):
    help = "Create the default demo detection rules (existing rules with the same name are left alone)."

    def handle(self, *args, **options):
        loki = bool(settings.LOKI_URL)
        kubernetes = bool(settings.KUBERNETES_KUBECONFIG or settings.KUBERNETES_IN_CLUSTER)
        created = 0
        for spec in DEFAULT_RULES:
            enabled = {RuleKind.LOG_PATTERN: loki, RuleKind.KUBERNETES: kubernetes}.get(spec["kind"], True)
            if DetectionRule.objects.filter(name=spec["name"]).exists():
                continue
            # Not asked of the source: seeding runs before Prometheus or Loki may be up.
            services.create_rule(check_source=False, enabled=enabled, **spec)
            created += 1
        self.stdout.write(f"detection rules: {created} created, {len(DEFAULT_RULES) - created} already present")
