"""Time conversions shared by the clients.

Prometheus and Tempo take Unix seconds, Loki takes Unix nanoseconds (as exact
integers: a float cannot hold 19 significant digits), and callers may pass
datetimes, numbers or RFC3339 strings.
"""

from __future__ import annotations

from datetime import datetime, timezone


def to_datetime(value: datetime | float | int | str) -> datetime:
    """Coerce a datetime / Unix seconds / RFC3339 string to an aware datetime."""
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=timezone.utc)
    if isinstance(value, (int, float)):
        return datetime.fromtimestamp(value, tz=timezone.utc)
    try:
        return datetime.fromtimestamp(float(value), tz=timezone.utc)
    except ValueError:
        return to_datetime(datetime.fromisoformat(value.replace("Z", "+00:00")))


def to_unix_seconds(value: datetime | float | int | str) -> float:
    """Unix seconds (float) for datetimes, numbers and RFC3339 strings."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    return to_datetime(value).timestamp()


def to_unix_ns(value: datetime | float | int | str) -> int:
    """Unix nanoseconds. Ints above 1e17 are taken to be nanoseconds already."""
    if isinstance(value, str) and value.lstrip("-").isdigit():
        value = int(value)  # keep digit strings exact (Loki sends ns as strings)
    if isinstance(value, int) and not isinstance(value, bool):
        return value if abs(value) > 10**17 else value * 10**9
    if isinstance(value, datetime):
        dt = to_datetime(value)
        delta = dt - datetime(1970, 1, 1, tzinfo=timezone.utc)
        return (delta.days * 86400 + delta.seconds) * 10**9 + delta.microseconds * 1000
    return round(to_unix_seconds(value) * 1e9)
