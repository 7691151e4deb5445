"""The service catalog: services and their dependencies.

Catalog writes have no live event type of their own (incidents.events.EVENT_TYPES): no page
follows the catalog live. They still go through here so that validation (the dependency graph
stays acyclic) and the refusal to delete referenced services hold for the API, the admin and
load_catalog alike.
"""
from __future__ import annotations

from typing import Any, Iterable

from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.db.models import ProtectedError, Q

from reliability_studio.errors import DomainError

from .. import selectors
from ..models import Incident, Service


class ServiceInUse(DomainError):
    """A service that incidents or other records still reference cannot be deleted."""

    http_status = 409
    code = "service_in_use"



SERVICE_FIELDS = ("slug", "name", "owner_team", "tier", "labels", "runbook_url", "repository_url", "description")
CATALOG_LOCK = 7_245_010  # pg_advisory_xact_lock key: dependency changes are checked one at a time


def _lock_catalog() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s)", [CATALOG_LOCK])


def check_dependencies(*, service_slug: str, depends_on: Iterable[str], graph: dict[str, set[str]] | None = None) -> None:
    """Refuse a self-dependency or a dependency cycle, naming it. `graph` (slug → callee slugs)
    defaults to the catalog in the database; `service_slug`'s edges are replaced by `depends_on`."""
    targets = set(depends_on)
    if service_slug in targets:
        raise ValidationError({"depends_on": f"{service_slug} cannot depend on itself"})
    graph = {k: set(v) for k, v in (selectors.dependency_graph_by_slug() if graph is None else graph).items()}
    graph[service_slug] = targets
    cycle = selectors.dependency_cycle(graph)
    if cycle:
        if service_slug in cycle:  # name it from the service being changed
            core = cycle[:-1]
            start = core.index(service_slug)
            cycle = core[start:] + core[:start] + [service_slug]
        raise ValidationError({"depends_on": "dependency cycle: " + " → ".join(cycle)})


def _save_service(service: Service) -> Service:
    service.name = service.name or service.slug
    service.full_clean(exclude=["depends_on"])
    service.save()
    return service


def create_service(*, slug: str, name: str = "", depends_on: Iterable[Service] = (), user=None,
                   actor: str | None = None, **fields: Any) -> Service:
    """Add a service to the catalog, with its dependencies (refused if they would form a cycle)."""
    unknown = set(fields) - set(SERVICE_FIELDS)
    if unknown:
        raise ValidationError({field: "is not a service field" for field in sorted(unknown)})
    with transaction.atomic():
        _lock_catalog()
        service = _save_service(Service(slug=slug, name=name, **fields))
        _set_dependencies(service, list(depends_on))
    return service


def update_service(*, service: Service, depends_on: Iterable[Service] | None = None, user=None,
                   actor: str | None = None, **changes: Any) -> Service:
    """Edit a service's fields and, when given, replace its dependencies."""
    unknown = set(changes) - set(SERVICE_FIELDS)
    if unknown:
        raise ValidationError({field: "cannot be changed here" for field in sorted(unknown)})
    with transaction.atomic():
        _lock_catalog()
        locked = Service.objects.select_for_update().get(pk=service.pk)
        for field, value in changes.items():
            setattr(locked, field, value)
        _save_service(locked)
        if depends_on is not None:
            _set_dependencies(locked, list(depends_on))
    return locked


def set_service_dependencies(*, service: Service, depends_on: Iterable[Service]) -> Service:
    """Replace the services `service` calls. A self-dependency or a cycle is refused (400)."""
    with transaction.atomic():
        _lock_catalog()
        _set_dependencies(service, list(depends_on))
    return service


def _set_dependencies(service: Service, depends_on: list[Service]) -> None:
    check_dependencies(service_slug=service.slug, depends_on=[s.slug for s in depends_on])
    service.depends_on.set(depends_on)


def delete_service(*, service: Service, user=None, actor: str | None = None) -> None:
    """Remove a service nothing refers to. Incidents keep their services for the review, and
    rules are never deleted as a side effect: either refuses with ServiceInUse (409)."""
    with transaction.atomic():
        _lock_catalog()
        locked = Service.objects.select_for_update().get(pk=service.pk)
        referencing = list(
            Incident.objects.filter(Q(primary_service=locked) | Q(affected_services=locked))
            .distinct().order_by("id").values_list("id", flat=True)[:6]
        )
        if referencing:
            keys = ", ".join(f"INC-{pk}" for pk in referencing[:5]) + (", …" if len(referencing) > 5 else "")
            raise ServiceInUse(f"{locked.slug} cannot be deleted: incidents refer to it ({keys}); incidents are kept for the review")
        try:
            with transaction.atomic():
                locked.delete()
        except ProtectedError as exc:
            names = sorted({f"{obj._meta.verbose_name} {obj}" for obj in exc.protected_objects})
            shown = ", ".join(names[:5]) + (", …" if len(names) > 5 else "")
            raise ServiceInUse(f"{locked.slug} cannot be deleted: still used by {shown}; delete or move them first") from None
