"""Seed the demo catalog's SLOs: an availability and a latency SLO for each demo service
(idempotent: SLOs are matched by slug). The demo exports http_requests_total{service,route,code}
and http_request_duration_seconds_bucket{service,route,le} under job="shop"."""
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from incidents.models import Service
from slos import services
from slos.models import SLO, SLIKind

SHOP = 'job="shop"'


def demo_slos(service: Service) -> list[SLO]:
    selector = f'{SHOP},service="{service.slug}"'
    return [
        SLO(service=service, name="Availability", sli_kind=SLIKind.AVAILABILITY, selector=selector, objective=99.9,
            window_days=30, owner=service.owner_team,
            description="Requests answered without a server error (5xx)."),
        SLO(service=service, name="Latency under 500 ms", sli_kind=SLIKind.LATENCY, selector=selector,
            latency_threshold_seconds=0.5, objective=99.0, window_days=30, owner=service.owner_team,
            description="Requests served in under 500 ms (histogram bucket le=0.5)."),
    ]


class Command(BaseCommand):
    help = "Create an availability and a latency SLO for every catalog service (existing ones are left alone)."

    def add_arguments(self, parser):
        parser.add_argument("--service", action="append", help="only these service slugs")
        parser.add_argument("--check-source", action="store_true", help="also validate the queries against Prometheus")

    def handle(self, *args, service=None, check_source=False, **options):
        catalog = Service.objects.order_by("slug")
        if service:
            catalog = catalog.filter(slug__in=service)
        created = present = 0
        for svc in catalog:
            for slo in demo_slos(svc):
                slo.slug = slo.generated_slug()
                if SLO.objects.filter(slug=slo.slug).exists():
                    present += 1
                    continue
                try:
                    services.save_slo(slo=slo, check_source=check_source)
                except ValidationError as exc:
                    raise CommandError(f"{slo.slug}: {' '.join(exc.messages)}") from None
                created += 1
        self.stdout.write(f"SLOs: {created} created, {present} already present")
