"""Load a service catalog (YAML) with its dependency graph: manage.py load_catalog demo/catalog.yaml

    services:
      - slug: checkout
        name: Checkout
        owner_team: payments
        tier: tier-1
        depends_on: [payment, database]

Creates or updates every listed service and sets its dependencies; it never deletes services.
The whole file is validated first (unknown services, a service depending on itself, a dependency
cycle, named) and loaded in one transaction through incidents.services: a bad file changes nothing.
"""
from pathlib import Path

import yaml
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from incidents import selectors, services
from incidents.models import Service

FIELDS = ("name", "owner_team", "tier", "labels", "runbook_url", "repository_url", "description")


def _messages(exc: ValidationError) -> str:
    if hasattr(exc, "error_dict"):
        return "; ".join(f"{field}: {' '.join(msgs)}" for field, msgs in exc.message_dict.items())
    return " ".join(exc.messages)


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
        graph = selectors.dependency_graph_by_slug()
        for entry in entries:
            depends_on = entry.get("depends_on") or []
            if not isinstance(depends_on, list) or not all(isinstance(d, str) for d in depends_on):
                raise CommandError(f"{path}: {entry['slug']}: depends_on must be a list of service slugs")
            missing = set(depends_on) - known
            if missing:
                raise CommandError(f"{path}: {entry['slug']} depends on unknown service(s) {', '.join(sorted(missing))}")
            if entry["slug"] in depends_on:
                raise CommandError(f"{path}: {entry['slug']} cannot depend on itself")
            graph[entry["slug"]] = set(depends_on)
        cycle = selectors.dependency_cycle(graph)
        if cycle:
            raise CommandError(f"{path}: dependency cycle: {' → '.join(cycle)}")
        with transaction.atomic():
            loaded = {}
            for entry in entries:
                fields = {field: entry[field] for field in FIELDS if field in entry}
                existing = Service.objects.filter(slug=entry["slug"]).first()
                try:
                    if existing is None:
                        loaded[entry["slug"]] = services.create_service(slug=entry["slug"], **fields)
                    else:
                        loaded[entry["slug"]] = services.update_service(service=existing, **fields)
                except ValidationError as exc:
                    raise CommandError(f"{path}: service {entry['slug']}: {_messages(exc)}") from None
            # Clear the listed services' edges first: every step after that only adds edges of the
            # (acyclic) final graph, so no intermediate state is refused as a cycle.
            for service in loaded.values():
                services.set_service_dependencies(service=service, depends_on=[])
            for entry in entries:
                deps = list(Service.objects.filter(slug__in=entry.get("depends_on") or []))
                try:
                    services.set_service_dependencies(service=loaded[entry["slug"]], depends_on=deps)
                except ValidationError as exc:
                    raise CommandError(f"{path}: service {entry['slug']}: {_messages(exc)}") from None
        self.stdout.write(f"catalog loaded: {len(entries)} services")
