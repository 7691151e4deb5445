"""Reads: the queries pages, the API and metrics share."""
from __future__ import annotations

from collections import defaultdict, deque
from datetime import datetime, timedelta
from typing import Iterable

from django.db.models import (
    Avg, Case, Count, DurationField, ExpressionWrapper, F, IntegerField, Max, Min, OuterRef, Prefetch, Q, Subquery,
    Value, When,
)

from .models import Incident, Service, Severity, Status


def incident_counts_by_status_and_severity() -> dict[tuple[str, str], int]:
    rows = Incident.objects.values("status", "severity").annotate(n=Count("id")).order_by()
    return {(row["status"], row["severity"]): row["n"] for row in rows}


def dependency_edges(direction: str = "callers") -> dict[int, set[int]]:
    """The service graph's adjacency in one query: for each service id, its callers
    (``"callers"``: who depends on it), its callees (``"callees"``), or both (``"both"``)."""
    if direction not in ("callers", "callees", "both"):
        raise ValueError(f"unknown direction {direction!r}; expected callers, callees or both")
    adjacency: dict[int, set[int]] = defaultdict(set)
    for caller, callee in Service.depends_on.through.objects.values_list("from_service_id", "to_service_id"):
        if direction in ("callers", "both"):
            adjacency[callee].add(caller)
        if direction in ("callees", "both"):
            adjacency[caller].add(callee)
    return adjacency


def dependency_graph_by_slug() -> dict[str, set[str]]:
    """slug → the slugs it depends on (one query)."""
    graph: dict[str, set[str]] = defaultdict(set)
    rows = Service.depends_on.through.objects.values_list("from_service__slug", "to_service__slug")
    for caller, callee in rows:
        graph[caller].add(callee)
    return graph


def dependency_cycle(graph: dict) -> list | None:
    """A cycle in a directed graph (node → successors) as [a, b, …, a], or None. Deterministic:
    nodes and successors are visited in sorted order."""
    WHITE, GREY, BLACK = 0, 1, 2
    colour = defaultdict(int)
    for root in sorted(graph):
        if colour[root] != WHITE:
            continue
        path, stack = [root], [iter(sorted(graph.get(root, ())))]
        colour[root] = GREY
        while stack:
            nxt = next(stack[-1], None)
            if nxt is None:
                colour[path.pop()] = BLACK
                stack.pop()
            elif colour[nxt] == GREY:
                return path[path.index(nxt):] + [nxt]
            elif colour[nxt] == WHITE:
                colour[nxt] = GREY
                path.append(nxt)
                stack.append(iter(sorted(graph.get(nxt, ()))))
    return None


def reachable(start: Iterable[int], adjacency: dict[int, set[int]]) -> dict[int, int]:
    """Breadth-first from `start`: every other reachable service id with its distance in hops."""
    seen = set(start)
    distance: dict[int, int] = {}
    queue = deque((pk, 0) for pk in seen)
    while queue:
        pk, depth = queue.popleft()
        for nxt in sorted(adjacency.get(pk, ())):
            if nxt not in seen:
                seen.add(nxt)
                distance[nxt] = depth + 1
                queue.append((nxt, depth + 1))
    return distance


def blast_radius(services: Iterable[Service]) -> list[tuple[Service, int]]:
    """Services that depend, directly or transitively, on any of `services`, with their distance.

    The dependency edges are read in one query and walked breadth-first, so the cost is one round
    trip whatever the depth of the graph.
    """
    distance = reachable({s.pk for s in services}, dependency_edges("callers"))
    by_pk = Service.objects.in_bulk(distance)
    return sorted(((by_pk[pk], d) for pk, d in distance.items()), key=lambda item: (item[1], item[0].slug))


def incident_blast_radius(incident: Incident) -> list[tuple[Service, int]]:
    affected = list(incident.affected_services.all())
    if incident.primary_service_id and all(s.pk != incident.primary_service_id for s in affected):
        affected.append(incident.primary_service)
    affected_pks = {s.pk for s in affected}
    return [(s, d) for s, d in blast_radius(affected) if s.pk not in affected_pks]


def mean_response_times(since: datetime | None = None) -> dict[str, timedelta | None]:
    """Mean time to detect, acknowledge and resolve over incidents started since `since`."""
    qs = Incident.objects.all()
    if since is not None:
        qs = qs.filter(started_at__gte=since)

    def mean(expr):
        return Avg(ExpressionWrapper(expr, output_field=DurationField()))

    return qs.aggregate(
        mttd=mean(F("detected_at") - F("started_at")),
        mtta=mean(F("acknowledged_at") - F("detected_at")),
        mttr=mean(F("resolved_at") - F("started_at")),
    )


LIST_COLUMNS = (
    "id", "title", "severity", "status", "source", "fingerprint", "started_at", "detected_at", "acknowledged_at",
    "mitigated_at", "resolved_at", "updated_at",
)


def incident_list_values(queryset):
    """Plain rows for the incident list: a values() query, finished by `finish_list_rows`.

    The list is the hottest read of the API and the control room; building dicts straight from
    the database is several times cheaper than instantiating and serialising models
    (bench/api.py). Paginate this queryset, then finish the page.
    """
    return queryset.values(
        *LIST_COLUMNS, primary_service_slug=F("primary_service__slug"), commander_username=F("commander__username")
    )


def finish_list_rows(rows: list[dict]) -> list[dict]:
    """Add key and affected services (one query for the whole page)."""
    affected = defaultdict(list)
    links = Incident.affected_services.through.objects.filter(incident_id__in=[r["id"] for r in rows])
    for incident_id, slug in links.values_list("incident_id", "service__slug").order_by("service__slug"):
        affected[incident_id].append(slug)
    for row in rows:
        row["key"] = f"INC-{row['id']}"
        row["primary_service"] = row.pop("primary_service_slug")
        row["commander"] = row.pop("commander_username")
        row["affected_services"] = affected[row["id"]]
    return rows


def active_incidents():
    return (
        Incident.objects.active()
        .select_related("primary_service", "commander")
        .prefetch_related("affected_services")
        .order_by("-started_at")
    )


def resolved_recently(limit: int = 20):
    return Incident.objects.filter(status=Status.RESOLVED).order_by("-resolved_at")[:limit]


SEVERITY_ORDER = Case(
    *(When(severity=s, then=Value(Severity.rank(s))) for s in Severity.values), default=Value(0), output_field=IntegerField()
)


def control_room_incidents(*, status: str = "active", severity: str = "", service: Service | None = None):
    """The incident list of the control room: active first, then the worst, then the newest."""
    qs = Incident.objects.select_related("primary_service", "commander").prefetch_related(
        Prefetch("affected_services", queryset=Service.objects.only("id", "slug", "name").order_by("slug"))
    )
    if status == "active":
        qs = qs.active()
    elif status != "all":
        qs = qs.filter(status=status)
    if severity:
        qs = qs.filter(severity=severity)
    if service is not None:
        qs = qs.filter(Q(primary_service=service) | Q(affected_services=service)).distinct()
    resolved_last = Case(When(status=Status.RESOLVED, then=Value(1)), default=Value(0), output_field=IntegerField())
    return qs.order_by(resolved_last, SEVERITY_ORDER.desc(), "-started_at", "-id")


def active_incidents_by_service() -> dict[int, list[dict]]:
    """For each service id, the unresolved incidents touching it (one query), worst first."""
    rows = (
        Incident.affected_services.through.objects.exclude(incident__status=Status.RESOLVED)
        .values("service_id", "incident_id", "incident__severity", "incident__status")
    )
    by_service: dict[int, list[dict]] = defaultdict(list)
    for row in rows:
        by_service[row["service_id"]].append(
            {"id": row["incident_id"], "key": f"INC-{row['incident_id']}", "severity": row["incident__severity"],
             "status": row["incident__status"]}
        )
    for incidents in by_service.values():
        incidents.sort(key=lambda i: (-Severity.rank(i["severity"]), i["id"]))
    return by_service


def service_catalog():
    return Service.objects.prefetch_related(
        Prefetch("depends_on", queryset=Service.objects.only("id", "slug").order_by("slug")),
        Prefetch("dependents", queryset=Service.objects.only("id", "slug").order_by("slug")),
    ).order_by("tier", "slug")


def incident_review_alerts(incident: Incident) -> list:
    """The alerts that belonged to `incident` (detection's `Alert.incident`, reverse name `alerts`),
    each with `first_firing`: when it first fired for this incident, read from the timeline because
    an alert that fired again keeps only its latest `firing_since`."""
    first = dict(
        incident.timeline.filter(data__to="firing", data__alert__isnull=False)
        .values_list("data__alert")
        .annotate(first=Min("occurred_at"))
        .order_by()
    )
    alerts = list(incident.alerts.select_related("rule", "source", "service"))
    for alert in alerts:
        alert.first_firing = first.get(alert.pk) or alert.firing_since
    alerts.sort(key=lambda a: (a.first_firing is None, a.first_firing or a.updated_at, a.pk))
    return alerts


# Validators for conditional GETs (ETag / If-None-Match). Each is one cheap statement, run BEFORE
# the content is read: a change committed in between then yields an old tag with new content (one
# extra 200 later), never a new tag with old content. They rest on three facts the write paths keep
# (tests/performance/test_etags.py checks them through the services): every change to what an
# incident shows either moves its `updated_at` or appends a timeline event (affected services are
# changed with a "joined"/"Updated affected_services" entry), services move their own `updated_at`,
# and incidents are created and deleted (the count moves). A username change is not seen.
def _latest_timeline_id():
    from .models import TimelineEvent

    return Subquery(TimelineEvent.objects.order_by("-id").values("id")[:1])


def _latest_service_change():
    return Subquery(Service.objects.order_by("-updated_at").values("updated_at")[:1])


def incident_list_version(queryset) -> tuple:
    """What the list of `queryset` shows depends on: its size and latest change, the newest timeline
    entry anywhere (affected services) and the newest service change (slugs) — one statement."""
    row = queryset.order_by().aggregate(
        n=Count("id"), last=Max("updated_at"), timeline=Max(_latest_timeline_id()),
        services=Max(_latest_service_change()),
    )
    return row["n"], row["last"], row["timeline"], row["services"]


def incident_detail_version(pk: int) -> tuple | None:
    """The same for one incident (None when it does not exist) — one statement."""
    from .models import TimelineEvent

    row = (
        Incident.objects.filter(pk=pk)
        .annotate(
            last_event=Subquery(
                TimelineEvent.objects.filter(incident_id=OuterRef("pk")).order_by("-id").values("id")[:1]
            ),
            last_service_change=_latest_service_change(),
        )
        .values_list("updated_at", "last_event", "last_service_change")
        .first()
    )
    return row


class _CountOf(Subquery):
    """`(SELECT count(*) FROM (<queryset>))` as an expression: a count without a GROUP BY."""

    template = "(SELECT count(*) FROM (%(subquery)s) _counted)"
    output_field = IntegerField()


def _page_version_parts() -> dict:
    from .models import Task, TimelineEvent

    edges = Service.depends_on.through.objects
    tasks = Task.objects.filter(incident_id=OuterRef("pk")).order_by()
    return {
        # The incident's own fields, its primary service and commander (their ids).
        "incident": {"v_updated": F("updated_at")},
        # Its timeline; affected-service changes append an entry too.
        "timeline": {"v_event": Subquery(
            TimelineEvent.objects.filter(incident_id=OuterRef("pk")).order_by("-id").values("id")[:1])},
        "tasks": {"v_tasks": _CountOf(tasks.values("id")),
                  "v_task_change": Subquery(tasks.order_by("-updated_at").values("updated_at")[:1])},
        # Slugs and names (edits move updated_at; a deletion moves the count).
        "services": {"v_services": _CountOf(Service.objects.order_by().values("id")),
                     "v_service_change": _latest_service_change()},
        # The dependency edges: `.set()` deletes and inserts rows, so (count, newest id) moves.
        "graph": {"v_edges": _CountOf(edges.order_by().values("id")),
                  "v_edge": Subquery(edges.order_by("-id").values("id")[:1])},
    }


def incident_page_version(pk: int, parts) -> tuple | None:
    """What one of the incident page's regions shows depends on, for its ETag: `parts` names which
    of incident, timeline, tasks, services, graph — one statement (None when there is no such
    incident). Unseen, as for the API: a user renaming their username."""
    available = _page_version_parts()
    annotations = {}
    for part in parts:
        annotations.update(available[part])
    return Incident.objects.filter(pk=pk).annotate(**annotations).values_list(*annotations).first()
