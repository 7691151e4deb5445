"""Parsing of external alert webhooks (Alertmanager v4, Grafana Alerting) into one shape.

One declarative parser per integration, as Grafana OnCall does: what a payload must contain,
how its alerts map onto ours. Unknown fields are ignored; missing or mistyped required fields
raise IntakeError with the reason, before anything is written.

The intake answers 202 only for what this module accepted, and the queued task parses the same
body again: so everything that could fail later (a NUL character Postgres refuses, a time that
cannot be stored, a number that overflows) is refused here, never discovered by the worker.
"""
from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, replace
from datetime import datetime, timezone as dt_timezone

from django.utils.dateparse import parse_datetime

from incidents.models import Severity

from .models import AlertSourceKind

SERVICE_LABELS = ("service", "sloth_service", "app", "app_kubernetes_io_name", "job")
SEVERITY_WORDS = {
    "critical": Severity.CRITICAL, "page": Severity.CRITICAL, "p1": Severity.CRITICAL,
    "high": Severity.HIGH, "error": Severity.HIGH, "major": Severity.HIGH, "p2": Severity.HIGH,
    "warning": Severity.MEDIUM, "medium": Severity.MEDIUM, "ticket": Severity.MEDIUM, "p3": Severity.MEDIUM,
    "info": Severity.LOW, "low": Severity.LOW, "minor": Severity.LOW, "p4": Severity.LOW,
}
MAX_ALERTS = 1000
GROUP_KEY_LENGTH = 200  # Alert.group_key's column; a longer groupKey is stored as its digest


class IntakeError(ValueError):
    pass


@dataclass(frozen=True)
class ExternalAlert:
    fingerprint: str
    name: str
    firing: bool
    labels: dict[str, str]
    annotations: dict[str, str]
    starts_at: datetime | None
    ends_at: datetime | None
    severity: str | None
    service_slug: str | None
    value: float | None = None
    group_key: str = ""  # the delivery's groupKey (normalised by _group_key): its alerts are one group


def _time(value, field: str) -> datetime | None:
    """An RFC 3339 time, normalised to UTC (any offset below 24 h is valid RFC 3339, but
    PostgreSQL stores offsets only up to ±15:59)."""
    if value in (None, "", "0001-01-01T00:00:00Z"):
        return None
    if not isinstance(value, str):
        raise IntakeError(f"{field} must be an RFC 3339 string")
    try:
        parsed = parse_datetime(value)
    except ValueError:  # well formed but impossible: month 13, offset +99:00
        parsed = None
    if parsed is None:
        raise IntakeError(f"{field} is not an RFC 3339 time: {value[:64]!r}")
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt_timezone.utc)
    try:
        return parsed.astimezone(dt_timezone.utc)
    except OverflowError:
        raise IntakeError(f"{field} is out of range: {value[:64]!r}") from None


def _text(value: str, field: str) -> str:
    if "\x00" in value:
        raise IntakeError(f"{field} must not contain NUL characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise IntakeError(f"{field} is not valid Unicode text (unpaired surrogate)") from None
    return value


def _string_map(value, field: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        raise IntakeError(f"{field} must be an object of strings")
    for key, text in value.items():
        _text(key, f"{field} key")
        _text(text, f"{field}.{key[:40]}")
    return value


def _number(value) -> float | None:
    try:
        number = float(value)
    except OverflowError:  # an integer beyond float range
        return None
    return number if math.isfinite(number) else None


def _parse_alert(item, index: int) -> ExternalAlert:
    where = f"alerts[{index}]"
    if not isinstance(item, dict):
        raise IntakeError(f"{where} must be an object")
    status = item.get("status")
    if status not in ("firing", "resolved"):
        raise IntakeError(f"{where}.status must be 'firing' or 'resolved'")
    labels = _string_map(item.get("labels"), f"{where}.labels")
    if not labels:
        raise IntakeError(f"{where}.labels must not be empty")
    fingerprint = item.get("fingerprint")
    if fingerprint is not None and (not isinstance(fingerprint, str) or not fingerprint or len(fingerprint) > 120):
        raise IntakeError(f"{where}.fingerprint must be a non-empty string of at most 120 characters")
    if fingerprint is not None:
        _text(fingerprint, f"{where}.fingerprint")
    if fingerprint is None:  # older senders: derive it from the label set, as Alertmanager does
        fingerprint = "labels:" + ",".join(f"{k}={labels[k]}" for k in sorted(labels))[:110]
    service = next((labels[k] for k in SERVICE_LABELS if labels.get(k)), None)
    values = item.get("values")
    value = None
    if isinstance(values, dict):
        numbers = [v for v in values.values() if isinstance(v, (int, float)) and not isinstance(v, bool)]
        value = _number(numbers[0]) if numbers else None
    return ExternalAlert(
        fingerprint=fingerprint,
        name=labels.get("alertname", "external alert")[:300],
        firing=status == "firing",
        labels=labels,
        annotations=_string_map(item.get("annotations"), f"{where}.annotations"),
        starts_at=_time(item.get("startsAt"), f"{where}.startsAt"),
        ends_at=_time(item.get("endsAt"), f"{where}.endsAt"),
        severity=SEVERITY_WORDS.get(labels.get("severity", "").lower()),
        service_slug=service,
        value=value,
    )


def _group_key(value) -> str:
    """The delivery's `groupKey`: Alertmanager (and Grafana, which embeds one) sends the alerts of
    one notification group together, under one key. Kept as sent, or as its digest when too long."""
    if value is None:
        return ""
    if not isinstance(value, str):
        raise IntakeError("groupKey must be a string")
    _text(value, "groupKey")
    if len(value) <= GROUP_KEY_LENGTH:
        return value
    return "sha256:" + hashlib.sha256(value.encode("utf-8")).hexdigest()


def parse_webhook(kind: str, payload) -> list[ExternalAlert]:
    """Both senders share the Alertmanager envelope; Grafana adds fields we may ignore."""
    if not isinstance(payload, dict):
        raise IntakeError("the body must be a JSON object")
    if kind == AlertSourceKind.ALERTMANAGER and str(payload.get("version", "4")) != "4":
        raise IntakeError(f"unsupported Alertmanager webhook version {payload.get('version')!r}; expected '4'")
    alerts = payload.get("alerts")
    if not isinstance(alerts, list) or not alerts:
        raise IntakeError("'alerts' must be a non-empty list")
    if len(alerts) > MAX_ALERTS:
        raise IntakeError(f"too many alerts in one delivery ({len(alerts)} > {MAX_ALERTS})")
    group_key = _group_key(payload.get("groupKey"))
    return [replace(_parse_alert(item, i), group_key=group_key) for i, item in enumerate(alerts)]
