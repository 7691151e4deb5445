"""The collectors a run uses, in step order (models.STEPS). One module per source."""
from __future__ import annotations

from .changes import ChangesCollector
from .kubernetes import KubernetesCollector
from .logs import LogsCollector
from .metrics import MetricsCollector
from .traces import TracesCollector


def collectors() -> list:
    """Fresh instances (a collector may keep per-run state between `prepare` and `collect`)."""
    return [MetricsCollector(), LogsCollector(), TracesCollector(), KubernetesCollector(), ChangesCollector()]
