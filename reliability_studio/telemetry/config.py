"""Reading telemetry settings from Django (optional) with safe defaults.

Clients never require Django: their constructors take plain arguments. The
``from_settings()`` classmethods use these helpers, which fall back to the
defaults below when Django is absent, unconfigured, or a name is not defined.
"""

from __future__ import annotations

import hashlib
import threading
from typing import Any

DEFAULTS: dict[str, Any] = {
    "PROMETHEUS_URL": "http://127.0.0.1:9090",
    "TELEMETRY_TIMEOUT_SECONDS": 10.0,
    "TELEMETRY_RETRIES": 2,
    "TELEMETRY_BREAKER_FAIL_MAX": 5,
    "TELEMETRY_BREAKER_RESET_SECONDS": 30.0,
    "KUBERNETES_IN_CLUSTER": False,
    "KUBERNETES_NAMESPACES": [],
}

_MISSING = object()


def get_setting(name: str, default: Any = _MISSING, settings: Any = None) -> Any:
    """``getattr(settings, name, default)`` that tolerates Django not being set up."""
    if default is _MISSING:
        default = DEFAULTS.get(name, "")
    recording = getattr(_reads, "names", None)
    if recording is not None:  # shared_client() is learning which settings a client reads
        recording[name] = default
    if settings is None:
        try:
            from django.conf import settings as django_settings
            from django.core.exceptions import ImproperlyConfigured
        except ImportError:
            return default
        try:
            return getattr(django_settings, name, default)
        except ImproperlyConfigured:
            return default
    return getattr(settings, name, default)


def as_bool(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes", "on")
    return bool(value)


def as_list(value: Any) -> list[str]:
    if not value:
        return []
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    return [str(item) for item in value]


def resilience_kwargs(settings: Any = None) -> dict[str, Any]:
    """Timeout/retry/breaker keyword arguments common to every client."""
    return {
        "timeout": float(get_setting("TELEMETRY_TIMEOUT_SECONDS", settings=settings)),
        "retries": int(get_setting("TELEMETRY_RETRIES", settings=settings)),
        "breaker_fail_max": int(get_setting("TELEMETRY_BREAKER_FAIL_MAX", settings=settings)),
        "breaker_reset_seconds": float(
            get_setting("TELEMETRY_BREAKER_RESET_SECONDS", settings=settings)
        ),
    }


def http_client_kwargs(prefix: str, settings: Any = None, default_url: str = "") -> dict[str, Any]:
    """Constructor kwargs for an HTTP client from ``<PREFIX>_URL/_TOKEN/_TENANT``."""
    kwargs = resilience_kwargs(settings)
    kwargs["url"] = get_setting(f"{prefix}_URL", default_url, settings) or ""
    kwargs["token"] = get_setting(f"{prefix}_TOKEN", "", settings) or None
    kwargs["tenant"] = get_setting(f"{prefix}_TENANT", "", settings) or None
    return kwargs


_shared: dict[tuple[type, str], Any] = {}
_shared_lock = threading.Lock()
# Per client class, the settings its from_settings() read (name -> default), learnt while building
# one; the shared instance is found again from their values, without building a client.
_read_by: dict[type, dict[str, Any]] = {}
_reads = threading.local()


def _settings_key(cls: type, settings: Any) -> tuple[type, str] | None:
    names = _read_by.get(cls)
    if names is None:
        return None
    values = repr([(name, get_setting(name, default, settings)) for name, default in sorted(names.items())])
    return cls, hashlib.sha256(values.encode()).hexdigest()  # secrets only as a digest


def _build_learning_reads(cls: type, settings: Any) -> tuple[Any, dict[str, Any]]:
    outer = getattr(_reads, "names", None)
    _reads.names = names = {}
    try:
        client = cls.from_settings(settings)
    finally:
        _reads.names = outer
        if outer is not None:
            outer.update(names)
    return client, names


def shared_client(cls: type, settings: Any = None) -> Any:
    """A process-wide client per class and configuration.

    The circuit breaker only protects a backend if its state outlives a single
    request, so views/tasks should use this rather than a fresh client each time.
    A configuration change (e.g. ``override_settings``) yields a new instance.

    The configuration is the values of the settings the class's ``from_settings()``
    reads through :func:`get_setting` (learnt when the first instance is built), so
    finding the shared instance reads a few settings and builds nothing: no session,
    no breaker per rule evaluation.
    """
    key = _settings_key(cls, settings)
    if key is not None:
        existing = _shared.get(key)
        if existing is not None:
            return existing
    probe, names = _build_learning_reads(cls, settings)
    with _shared_lock:
        _read_by[cls] = {**_read_by.get(cls, {}), **names}  # replaced, never mutated: read unlocked
        key = _settings_key(cls, settings)
        existing = _shared.setdefault(key, probe)
    if existing is not probe:
        probe.close()
    return existing
