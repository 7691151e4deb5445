"""Load a service catalog (YAML) with its dependency graph: manage.py load_catalog demo/catalog.yaml

    services:
      - slug: checkout
        name: Checkout
        owner_team: payments
        tier: tier-1
        depends_on: [payment, database]

Creates or updates every listed service and sets its dependencies; it never deletes services.
The whole file is validated first and loaded in one transaction: a bad file changes nothing.
"""
from pathlib import Path

import yaml
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from incidents.models import Service

FIELDS = ("name", "owner_team", "tier", "labels", "runbook_url", "repository_url", "description")


class Command(BaseCommand):
    help = "Create or update services and their dependency graph from a YAML catalog."

    def add_arguments(self, parser):
        parser.add_argument("path", type=Path)

    def handle(self, *args, path: Path, **_):
        try:
            document = yaml.safe_load(path.read_text())
        except (OSError, yaml.YAMLError) as exc:
            raise CommandError(f"cannot read catalog {path}: {exc}") from None
        entries = (document or {}).get("services") if isinstance(document, dict) else None
        if not isinstance(entries, list) or not entries:
            raise CommandError(f"{path}: expected a top-level 'services' list")
        slugs = [e.get("slug") for e in entries if isinstance(e, dict)]
        if len(slugs) != len(entries) or None in slugs:
            raise CommandError(f"{path}: every service needs a slug")
        known = set(slugs) | set(Service.objects.values_list("slug", flat=True))
        for entry in entries:
            missing = set(entry.get("depends_on") or []) - known
            if missing:
                raise CommandError(f"{path}: {entry['slug']} depends on unknown service(s) {', '.join(sorted(missing))}")
        with transaction.atomic():
            services = {}
            for entry in entries:
                service = Service.objects.filter(slug=entry["slug"]).first() or Service(slug=entry["slug"])
                for field in FIELDS:
                    if field in entry:
                        setattr(service, field, entry[field])
                service.name = service.name or entry["slug"]
                try:
                    service.full_clean(exclude=["depends_on"])
                except ValidationError as exc:
                    raise CommandError(f"{path}: service {entry['slug']}: {exc.messages[0]}") from None
                service.save()
                services[service.slug] = service
            for entry in entries:
                deps = Service.objects.filter(slug__in=entry.get("depends_on") or [])
                services[entry["slug"]].depends_on.set(deps)
        self.stdout.write(f"catalog loaded: {len(entries)} services")
