"""Formatting for the control room: compact durations for ages and MTTA/MTTR clocks."""
from __future__ import annotations

from datetime import datetime, timedelta

from django import template
from django.utils import timezone

register = template.Library()


@register.filter
def duration(value: timedelta | None) -> str:
    """`1d 02h`, `3h 04m`, `5m 06s`, `7s` — the two largest units are enough on a dashboard."""
    if value is None:
        return "—"
    seconds = max(int(value.total_seconds()), 0)
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    if days:
        return f"{days}d {hours:02d}h"
    if hours:
        return f"{hours}h {minutes:02d}m"
    if minutes:
        return f"{minutes}m {seconds:02d}s"
    return f"{seconds}s"


@register.filter
def age(value: datetime | None) -> str:
    """Time elapsed since `value`, formatted like `duration` (the page's clock script keeps it ticking)."""
    return "—" if value is None else duration(timezone.now() - value)


@register.filter
def get_item(mapping, key):
    """`mapping|get_item:key` — dictionary lookup with a variable key (empty when missing)."""
    return mapping.get(key, ()) if mapping else ()


@register.filter
def number(value) -> str:
    """A measured value in four significant digits (`0.1234`, `1235`, `1.2e+06`), `—` when none."""
    if value is None:
        return "—"
    try:
        return f"{float(value):.4g}"
    except (TypeError, ValueError):
        return str(value)
