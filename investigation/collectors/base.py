"""What every collector is: a small declarative module per source.

A collector says whether its source is configured, runs its queries for a `Scope` within a
deadline, and returns `EvidenceItem`s — each a bounded snapshot of the data with the exact query
that produced it. It never writes to the database (the runner stores the items, idempotently) and
never invents data: a source that is down raises `TelemetryError`, which the runner turns into
"unavailable" evidence; a source that is not configured is reported as such.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar, Protocol

from ..models import EvidenceStatus


@dataclass
class Scope:
    """What one investigation run looks at: services and time windows (all datetimes aware, UTC)."""

    incident_id: int
    services: list[str]  # slugs in scope, primary first
    roles: dict[str, str]  # slug -> "primary" | "affected" | "neighbour"
    edges: list[tuple[str, str]]  # caller -> callee, among the services in scope
    selectors: dict[str, dict[str, str]]  # slug -> telemetry selectors (see investigation.scope.telemetry_selectors)
    window_start: datetime
    window_end: datetime
    baseline_start: datetime
    baseline_end: datetime
    detection_time: datetime
    day_before: bool = True  # also compare with the same window one day earlier, where data exists

    @property
    def window_seconds(self) -> float:
        return (self.window_end - self.window_start).total_seconds()


@dataclass
class EvidenceItem:
    kind: str  # EvidenceKind
    source: str  # prometheus, loki, tempo, kubernetes, grafana, catalog
    service: str  # slug, or "" when the item is not about one service
    query: str  # the exact PromQL / LogQL / TraceQL / API path
    snapshot: dict[str, Any]  # the data itself, bounded
    finding: str  # one line a person reads
    score: float = 0.0  # 0 = nothing unusual; higher = more anomalous (comparable within a kind)
    status: str = EvidenceStatus.OK
    explore_url: str = ""
    anomaly_start: datetime | None = None

    def snapshot_bytes(self) -> int:
        return len(json.dumps(self.snapshot, separators=(",", ":"), default=str))


@dataclass
class CaseInputs:
    """What a collector contributes to the root-cause ranking's Case (investigation.rca)."""

    series: dict[str, dict[str, Any]] = field(default_factory=dict)  # service -> metric -> np.ndarray on the grid
    times: Any = None  # np.ndarray of the grid (metrics collector only)
    logs: list = field(default_factory=list)  # rca.LogLine
    traces: list = field(default_factory=list)  # rca.TraceSummary


class Collector(Protocol):
    step: ClassVar[str]  # its step name in models.STEPS: metrics, logs, traces, kubernetes, changes
    kind: ClassVar[str]  # EvidenceKind
    source: ClassVar[str]

    def configured(self) -> bool: ...

    def collect(self, scope: Scope, deadline: float) -> tuple[list[EvidenceItem], CaseInputs]:
        """Query the source for `scope` until time.monotonic() reaches `deadline`.

        Raises TelemetryError when the source fails as a whole; per-service failures become items
        with status UNAVAILABLE / TIMED_OUT so the other services' evidence is kept.
        """
        ...
