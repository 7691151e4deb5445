"""The registry of page regions: the incident page's panels and the review page's sections.

`incidents` must not import the apps built on it, yet their panels (investigation evidence and
hypotheses, SLO impact, remediation) live on the incident page. So a region is registered by
name: its partial template and a context builder `(request, incident) -> dict`. The incident page
renders every region of its page in column order, and `/incidents/<id>/regions/<name>/` renders
one alone when a live event names it (static/js/live.js). Registering an existing name replaces
it, which is how an app upgrades a placeholder panel (e.g. the evidence region) with its own.
Apps register from their AppConfig.ready().
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

INCIDENT_PAGE = "incident"
REVIEW_PAGE = "review"
MAIN, SIDE, FIXED = "main", "side", "fixed"  # FIXED: the page template places the region itself


@dataclass(frozen=True)
class Region:
    name: str
    template: str
    builder: Callable[..., dict]
    page: str = INCIDENT_PAGE
    column: str = MAIN
    order: int = 100


_REGISTRY: dict[str, Region] = {}


def register_region(name: str, template: str, builder: Callable[..., dict], *, page: str = INCIDENT_PAGE,
                    column: str = MAIN, order: int = 100) -> Region:
    """Register (or replace) the region `name`; idempotent, so a repeated ready() is harmless."""
    if page not in (INCIDENT_PAGE, REVIEW_PAGE):
        raise ValueError(f"unknown page {page!r}")
    if column not in (MAIN, SIDE, FIXED):
        raise ValueError(f"unknown column {column!r}")
    region = Region(name=name, template=template, builder=builder, page=page, column=column, order=order)
    _REGISTRY[name] = region
    return region


def register_default(name: str, template: str, builder: Callable[..., dict], **options) -> Region:
    """Register `name` unless an app already has: the incidents' own placeholders use this."""
    return _REGISTRY.get(name) or register_region(name, template, builder, **options)


def region(name: str) -> Region | None:
    return _REGISTRY.get(name)


def regions(page: str = INCIDENT_PAGE, column: str | None = None) -> list[Region]:
    """The page's regions in display order (column, then order, then name)."""
    found = [r for r in _REGISTRY.values() if r.page == page and (column is None or r.column == column)]
    return sorted(found, key=lambda r: (r.order, r.name))


def names(page: str = INCIDENT_PAGE) -> list[str]:
    return [r.name for r in regions(page)]


def build_context(request, incident, page: str = INCIDENT_PAGE) -> dict:
    """Every region's context merged, for rendering a whole page."""
    context: dict = {}
    for item in regions(page):
        context.update(item.builder(request, incident))
    return context
