"""The service dependency graph laid out for the blast-radius picture (rendered as SVG server-side).

Callers sit left of what they call, so a fault in a dependency reads left-to-right as "who feels
it". Columns are the longest call path from an entry point; rows are ordered by the average row
of the callers (one barycentre pass), which keeps the few-dozen-node catalogs readable without a
layout library.
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from .models import Service

NODE_WIDTH = 128
NODE_HEIGHT = 34
COLUMN_GAP = 64
ROW_GAP = 18
PADDING = 12
# Above this many services only the incident's neighbourhood is drawn.
FULL_CATALOG_LIMIT = 40


@dataclass
class Node:
    service: Service
    state: str  # "affected" | "dependent" | "other"
    distance: int | None = None  # hops from an affected service, for dependents
    column: int = 0
    row: int = 0
    x: int = 0
    y: int = 0

    @property
    def cx(self) -> int:
        return self.x + NODE_WIDTH // 2

    @property
    def cy(self) -> int:
        return self.y + NODE_HEIGHT // 2


@dataclass
class Edge:
    caller: Node
    callee: Node

    @property
    def hot(self) -> bool:
        """The fault travels along this edge: the callee is affected, the caller feels it."""
        return self.callee.state != "other" and self.caller.state != "other"

    @property
    def path(self) -> str:
        x1, y1 = self.caller.x + NODE_WIDTH, self.caller.cy
        x2, y2 = self.callee.x, self.callee.cy
        if x2 <= x1:  # same column or backwards (a cycle): loop around below
            low = max(self.caller.y, self.callee.y) + NODE_HEIGHT + ROW_GAP // 2
            return f"M{x1},{y1} C{x1 + 30},{low} {x2 - 30},{low} {x2},{y2}"
        mid = (x1 + x2) / 2
        return f"M{x1},{y1} C{mid:.0f},{y1} {mid:.0f},{y2} {x2},{y2}"


@dataclass
class GraphLayout:
    nodes: list[Node] = field(default_factory=list)
    edges: list[Edge] = field(default_factory=list)
    width: int = 0
    height: int = 0


def layout_blast_radius(affected: set[int], dependents: dict[int, int]) -> GraphLayout:
    """Lay out the service graph around an incident.

    `affected` are service ids the incident touches; `dependents` maps the ids of services that
    call them (directly or transitively) to their distance in hops.
    """
    edges = list(Service.depends_on.through.objects.values_list("from_service_id", "to_service_id"))
    all_ids = set(Service.objects.values_list("id", flat=True))
    if len(all_ids) > FULL_CATALOG_LIMIT:
        keep = affected | set(dependents)
        keep |= {callee for caller, callee in edges if caller in affected}  # what the affected call
        all_ids = keep
    services = Service.objects.in_bulk(all_ids)
    nodes = {}
    for pk, service in services.items():
        state = "affected" if pk in affected else "dependent" if pk in dependents else "other"
        nodes[pk] = Node(service=service, state=state, distance=dependents.get(pk))
    edges = [(a, b) for a, b in edges if a in nodes and b in nodes and a != b]
    _assign_columns(nodes, edges)
    _assign_rows(nodes, edges)
    layout = GraphLayout(nodes=sorted(nodes.values(), key=lambda n: (n.column, n.row)))
    layout.edges = [Edge(nodes[a], nodes[b]) for a, b in edges]
    columns = max((n.column for n in nodes.values()), default=-1) + 1
    rows = max((n.row for n in nodes.values()), default=-1) + 1
    for node in nodes.values():
        node.x = PADDING + node.column * (NODE_WIDTH + COLUMN_GAP)
        node.y = PADDING + node.row * (NODE_HEIGHT + ROW_GAP)
    layout.width = 2 * PADDING + columns * NODE_WIDTH + max(columns - 1, 0) * COLUMN_GAP
    layout.height = 2 * PADDING + rows * NODE_HEIGHT + max(rows - 1, 0) * ROW_GAP + ROW_GAP
    return layout


def _assign_columns(nodes: dict[int, Node], edges: list[tuple[int, int]]) -> None:
    """Column = longest call path from an entry point (Kahn's order; cycle members go last)."""
    callees = defaultdict(list)
    indegree = {pk: 0 for pk in nodes}
    for caller, callee in edges:
        callees[caller].append(callee)
        indegree[callee] += 1
    ready = sorted((pk for pk, d in indegree.items() if d == 0), key=lambda pk: nodes[pk].service.slug)
    placed = set()
    while ready:
        pk = ready.pop(0)
        placed.add(pk)
        for callee in callees[pk]:
            nodes[callee].column = max(nodes[callee].column, nodes[pk].column + 1)
            indegree[callee] -= 1
            if indegree[callee] == 0:
                ready.append(callee)
    last = max((nodes[pk].column for pk in placed), default=-1)
    for pk in nodes.keys() - placed:  # part of a dependency cycle
        nodes[pk].column = max(nodes[pk].column, last + 1)


def _assign_rows(nodes: dict[int, Node], edges: list[tuple[int, int]]) -> None:
    callers = defaultdict(list)
    for caller, callee in edges:
        callers[callee].append(caller)
    by_column = defaultdict(list)
    for node in nodes.values():
        by_column[node.column].append(node)
    for column in sorted(by_column):
        def barycentre(node: Node) -> float:
            rows = [nodes[c].row for c in callers[node.service.pk] if nodes[c].column < column]
            return sum(rows) / len(rows) if rows else float("inf")

        for row, node in enumerate(sorted(by_column[column], key=lambda n: (barycentre(n), n.service.slug))):
            node.row = row
