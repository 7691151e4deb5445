"""Record a deploy or configuration change from CI/CD (idempotent with --id).

    manage.py record_change --service payment --version v1.2.3 --author ci --url https://ci/run/42 \
        --at 2026-01-31T10:01:00Z --kind deploy --id ci-run-42
"""
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.utils.dateparse import parse_datetime

from incidents.models import Service
from investigation import services
from investigation.models import ChangeKind, ChangeSource


class Command(BaseCommand):
    help = "Record a deploy or configuration change (the same --id twice records it once)."

    def create_parser(self, prog_name, subcommand, **kwargs):
        # `--version V` is the change's version here, not Django's "print the Django version".
        return super().create_parser(prog_name, subcommand, conflict_handler="resolve", **kwargs)

    def add_arguments(self, parser):
        parser.add_argument("--service", required=True, help="service slug")
        parser.add_argument("--version", required=True)
        parser.add_argument("--author", default="")
        parser.add_argument("--url", default="")
        parser.add_argument("--at", default=None, help="ISO 8601 time (default: now)")
        parser.add_argument("--kind", default=ChangeKind.DEPLOY, choices=ChangeKind.values)
        parser.add_argument("--id", dest="external_id", default=None, help="external id (CI run, release id)")
        parser.add_argument("--description", default="")

    def handle(self, *args, service, version, author, url, at, kind, external_id, description, **options):
        target = Service.objects.filter(slug=service).first()
        if target is None:
            raise CommandError(f"unknown service {service!r}")
        occurred_at = None
        if at:
            occurred_at = parse_datetime(at)
            if occurred_at is None or occurred_at.tzinfo is None:
                raise CommandError(f"--at {at!r} is not an ISO 8601 time with a zone (e.g. 2026-01-31T10:01:00Z)")
        try:
            change, created = services.record_change(
                service=target, version=version, kind=kind, source=ChangeSource.API, author=author, url=url,
                description=description, occurred_at=occurred_at, external_id=external_id)
        except ValidationError as exc:
            raise CommandError("; ".join(f"{k}: {' '.join(v)}" for k, v in exc.message_dict.items())) from None
        verb = "recorded" if created else "already recorded"
        self.stdout.write(f"{verb}: change {change.pk} {change.kind} {change.service.slug} {change.version}"
                          f" at {change.occurred_at.isoformat()}")
