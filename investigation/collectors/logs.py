"""Logs evidence: what the services in scope log in the window that they did not log before.

Per service in scope (its catalog `loki.selector`), two bounded Loki range queries over the exact
LogQL selector — the window and the baseline, each at most `limit` lines (default 5,000),
`direction=backward` so a chatty service keeps the lines nearest the incident — mined into templates
with `investigation.logmining.compare_windows` (drain3). The templates it reports — new in the window,
or risen significantly (binomial test, see logmining) — become the evidence: counts, first-seen time,
a few example lines and the trace ids found in them (in the line text, or in Loki's structured
metadata `trace_id`, requested with `categorize-labels` by the client). A cheap
`sum(count_over_time(<selector>[1m]))` puts the counts in context (the total volume, which also
shows how much a truncated fetch left out). When a fetch hits the limit the window really covered is
shorter than asked: rates are computed over the span the lines cover, and the snapshot says so.

Score: the top template's `compare_windows` score (-log10 p), halved when the template does not look
like an error (`ERRORISH`), so a new error template outranks a new info line of the same count.

Snapshot (bounded: ≤ 20 templates × ≤ 3 examples, every line cut to 500 characters):

    {"selector", "window": {"start", "end"}, "baseline": {"start", "end"}, "limit", "direction",
     "lines": {"window": n, "baseline": n}, "truncated": {"window": bool, "baseline": bool},
     "covered_from": {"window": iso|None, "baseline": iso|None},
     "volume": {"query", "window", "baseline"} | {"query", "error"},
     "templates": [{"template", "count", "baseline_count", "first_seen", "new", "rate_ratio", "score",
                    "examples": [...], "trace_ids": [...]}],
     "templates_total": n}

Failures. One service's query failing (`TelemetryError`) gives an UNAVAILABLE item for that service
(TIMED_OUT for a timeout) with the error as its finding and the query kept; the other services still
collect. When *every* service's logs query fails, Loki as a whole is down: the first error is raised
and the runner records the source as unavailable. Services not started before the deadline
(`time.monotonic()`) get a TIMED_OUT item; the Loki client has no per-request timeout, so a request
already sent may run up to `TELEMETRY_TIMEOUT_SECONDS` past the deadline. The volume query is
optional: its failure is noted in the snapshot, never fails the item.
"""
from __future__ import annotations

import re
import time
from datetime import datetime, timezone
from typing import Any, ClassVar

from django.conf import settings

from reliability_studio import grafana_links
from reliability_studio.telemetry.errors import KIND_TIMEOUT, TelemetryError
from reliability_studio.telemetry.loki import LogEntry, LokiClient

from ..models import EvidenceKind, EvidenceStatus
from .base import CaseInputs, EvidenceItem, Scope

LINE_LIMIT = 5_000  # lines fetched per window per service (Loki `limit`)
CASE_LINES_PER_SERVICE = 2_000  # rca.LogLine handed to the ranking per service
MAX_TEMPLATES = 20
MAX_EXAMPLES = 3
MAX_TRACE_IDS = 5
MAX_LINE_CHARS = 500
ERRORISH = re.compile(r"error|exception|fail|traceback|panic|fatal|critical|timeout|timed out|refused|"
                      r"unavailable|exhausted|denied|invalid|oom|out of memory|errno", re.I)
NON_ERROR_WEIGHT = 0.5  # a new/risen template that does not look like an error counts half
VOLUME_STEP_S = 60


def _cut(text: str, limit: int = MAX_LINE_CHARS) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _iso(value: datetime | float | None) -> str | None:
    if value is None:
        return None
    if not isinstance(value, datetime):
        value = datetime.fromtimestamp(float(value), tz=timezone.utc)
    return value.astimezone(timezone.utc).isoformat()


def _clock(value: datetime | float | None) -> str:
    if value is None:
        return "?"
    if not isinstance(value, datetime):
        value = datetime.fromtimestamp(float(value), tz=timezone.utc)
    return value.astimezone(timezone.utc).strftime("%H:%M:%S")


def _seconds(entry: LogEntry) -> float:
    return entry.timestamp_ns / 1e9


def _template_regex(template: str) -> re.Pattern:
    """A regex matching the masked lines (logmining.mask) of a template: `<*>` = anything."""
    pattern = re.escape(" ".join(template.split()))
    pattern = re.sub(r"<(?:\\\*|[A-Z_]+)>", ".*?", pattern).replace(r"\ ", r"\s+")
    return re.compile(pattern, re.S)


_LOGFMT_MSG = re.compile(r'(?:^|\s)(?:msg|message)="((?:[^"\\]|\\.)+)"')


def headline(template: str) -> str:
    """The part of a template a person reads: a logfmt line's msg="..." when it has one."""
    match = _LOGFMT_MSG.search(template)
    return match.group(1) if match else template


def weighted_score(stat) -> float:
    return float(stat.score) * (1.0 if ERRORISH.search(stat.template) else NON_ERROR_WEIGHT)


def failure_status(exc: TelemetryError) -> str:
    return EvidenceStatus.TIMED_OUT if exc.kind == KIND_TIMEOUT else EvidenceStatus.UNAVAILABLE


class LogsCollector:
    step: ClassVar[str] = "logs"
    kind: ClassVar[str] = EvidenceKind.LOGS
    source: ClassVar[str] = "loki"

    def __init__(self, client: LokiClient | None = None, *, grafana_url: str | None = None,
                 limit: int = LINE_LIMIT, case_lines: int = CASE_LINES_PER_SERVICE,
                 volume: bool = True) -> None:
        self._client = client
        self._grafana_url = grafana_url
        self.limit = int(limit)
        self.case_lines = int(case_lines)
        self.volume = volume

    @property
    def client(self) -> LokiClient:
        if self._client is None:
            self._client = LokiClient.shared()
        return self._client

    def configured(self) -> bool:
        if self._client is not None:
            return self._client.configured
        return bool(getattr(settings, "LOKI_URL", ""))

    def collect(self, scope: Scope, deadline: float) -> tuple[list[EvidenceItem], CaseInputs]:
        items: list[EvidenceItem] = []
        inputs = CaseInputs()
        errors: list[TelemetryError] = []
        succeeded = 0
        for service in scope.services:
            selector = (scope.selectors.get(service) or {}).get("loki.selector") or f'{{service="{service}"}}'
            if time.monotonic() >= deadline:
                items.append(self._item(scope, service, selector, {"selector": selector},
                                        "not queried: the investigation's deadline was reached",
                                        status=EvidenceStatus.TIMED_OUT))
                continue
            try:
                item, lines = self._service(scope, service, selector, deadline)
            except TelemetryError as exc:
                errors.append(exc)
                items.append(self._item(scope, service, selector, {"selector": selector, "error": str(exc)},
                                        _cut(f"Loki query failed: {exc}"), status=failure_status(exc)))
                continue
            succeeded += 1
            items.append(item)
            inputs.logs.extend(lines)
        if errors and not succeeded:
            raise errors[0]  # every service that was queried failed: Loki itself is down
        return items, inputs

    # -- one service ------------------------------------------------------------------------------

    def _service(self, scope: Scope, service: str, selector: str, deadline: float):
        from investigation.logmining import compare_windows

        client = self.client
        window = client.query_range(selector, scope.window_start, scope.window_end,
                                    limit=self.limit, direction="backward").entries
        baseline = []
        baseline_skipped = time.monotonic() >= deadline
        if not baseline_skipped:
            baseline = client.query_range(selector, scope.baseline_start, scope.baseline_end,
                                          limit=self.limit, direction="backward").entries
        # A server (or proxy) that ignores `limit` must not blow the bound: keep the newest.
        window, baseline = window[-self.limit:], baseline[-self.limit:]
        truncated = {"window": len(window) >= self.limit, "baseline": len(baseline) >= self.limit}
        win_from = _seconds(window[0]) if truncated["window"] and window else None
        base_from = _seconds(baseline[0]) if truncated["baseline"] and baseline else None
        win_start = win_from or scope.window_start.timestamp()
        base_start = base_from or scope.baseline_start.timestamp()
        window_seconds = max(scope.window_end.timestamp() - win_start, 1.0)
        baseline_seconds = max(scope.baseline_end.timestamp() - base_start, 1.0)

        snapshot: dict[str, Any] = {
            "selector": selector,
            "window": {"start": _iso(scope.window_start), "end": _iso(scope.window_end)},
            "baseline": {"start": _iso(scope.baseline_start), "end": _iso(scope.baseline_end)},
            "limit": self.limit,
            "direction": "backward",
            "lines": {"window": len(window), "baseline": len(baseline)},
            "truncated": truncated,
            "covered_from": {"window": _iso(win_from), "baseline": _iso(base_from)},
        }
        if baseline_skipped:
            snapshot["baseline_skipped"] = "deadline reached before the baseline query"
        if self.volume and time.monotonic() < deadline:
            snapshot["volume"] = self._volume(scope, selector)

        lines = self._case_lines(service, window, baseline)
        if not window and not baseline:
            return self._item(scope, service, selector, {**snapshot, "templates": [], "templates_total": 0},
                              f"no log lines for {selector} in the window or the baseline",
                              status=EvidenceStatus.NO_DATA), lines
        if not window:
            return self._item(scope, service, selector, {**snapshot, "templates": [], "templates_total": 0},
                              f"no log lines for {selector} in the window ({len(baseline)} in the baseline)",
                              status=EvidenceStatus.NO_DATA), lines

        stats = compare_windows([(_seconds(e), e.line) for e in window],
                                [(_seconds(e), e.line) for e in baseline],
                                window_seconds=window_seconds, baseline_seconds=baseline_seconds,
                                max_templates=MAX_TEMPLATES, max_examples=MAX_EXAMPLES)
        # compare_windows reports only new or significantly risen templates; error-looking ones first.
        notable = sorted(stats, key=lambda s: -weighted_score(s))[:MAX_TEMPLATES]
        meta_ids = self._metadata_trace_ids(window, [s.template for s in notable])
        templates = []
        for stat in notable:
            ids = list(dict.fromkeys([*(stat.trace_ids or []), *meta_ids.get(stat.template, [])]))
            templates.append({
                "template": _cut(stat.template),
                "count": int(stat.count),
                "baseline_count": int(stat.baseline_count),
                "first_seen": _iso(stat.first_seen),
                "new": bool(stat.new),
                "rate_ratio": None if stat.rate_ratio is None or stat.rate_ratio == float("inf")
                else round(float(stat.rate_ratio), 2),
                "score": round(float(stat.score), 3),
                "examples": [_cut(str(x)) for x in list(stat.examples or [])[:MAX_EXAMPLES]],
                "trace_ids": ids[:MAX_TRACE_IDS],
            })
        snapshot["templates"] = templates
        snapshot["templates_total"] = len(stats)
        scanned = len(window) + len(baseline)
        if not notable:
            return self._item(scope, service, selector, snapshot,
                              f"no new or rising log templates ({scanned} lines scanned)"), lines
        top = notable[0]
        if top.new or not top.rate_ratio or top.rate_ratio == float("inf"):
            what = f"new log template '{_cut(headline(top.template), 160)}'"
        else:
            what = f"log template '{_cut(headline(top.template), 160)}' at {top.rate_ratio:.1f}× its baseline rate"
        finding = f"{what} ×{top.count} since {_clock(top.first_seen)}"
        if len(notable) > 1:
            finding += f" (+{len(notable) - 1} more)"
        if truncated["window"]:
            finding += f"; newest {len(window)} lines scanned"
        first = top.first_seen
        if first is not None and not isinstance(first, datetime):
            first = datetime.fromtimestamp(float(first), tz=timezone.utc)
        return self._item(scope, service, selector, snapshot, finding, score=round(weighted_score(top), 3),
                          anomaly_start=first), lines

    def _volume(self, scope: Scope, selector: str) -> dict[str, Any]:
        query = f"sum(count_over_time({selector}[1m]))"
        try:
            result = self.client.query_range(query, scope.baseline_start, scope.window_end,
                                             step=VOLUME_STEP_S)
        except TelemetryError as exc:
            return {"query": query, "error": _cut(str(exc))}
        win_start, win_end = scope.window_start.timestamp(), scope.window_end.timestamp()
        base_start, base_end = scope.baseline_start.timestamp(), scope.baseline_end.timestamp()
        window = baseline = 0.0
        for series in result.series:
            for ts, value in zip(series.timestamps, series.values):
                if value != value:  # NaN
                    continue
                if win_start < ts <= win_end:
                    window += value
                elif base_start < ts <= base_end:
                    baseline += value
        return {"query": query, "window": int(window), "baseline": int(baseline)}

    def _metadata_trace_ids(self, window: list[LogEntry], templates: list[str]) -> dict[str, list[str]]:
        """Trace ids from structured metadata, per template (lines matched back to their template)."""
        from investigation.logmining import mask, message_of

        with_ids = [(mask(message_of(e.line)), e.trace_id) for e in window if e.trace_id]
        out: dict[str, list[str]] = {}
        if not with_ids:
            return out
        for template in templates:
            regex = _template_regex(template)
            ids: list[str] = []
            for masked, trace_id in with_ids:
                if trace_id not in ids and regex.fullmatch(masked):
                    ids.append(trace_id)
                    if len(ids) >= MAX_TRACE_IDS:
                        break
            out[template] = ids
        return out

    def _case_lines(self, service: str, window: list[LogEntry], baseline: list[LogEntry]) -> list:
        """At most `case_lines` rca.LogLine, the same fraction of each window (keeps their rates)."""
        from investigation.rca import LogLine

        total = len(window) + len(baseline)
        keep = 1.0 if total <= self.case_lines else self.case_lines / total
        out = []
        for entries in (baseline, window):
            n = int(len(entries) * keep)
            if n <= 0:
                continue
            stride = len(entries) / n
            out.extend(LogLine(_seconds(entries[int(i * stride)]), service,
                               _cut(entries[int(i * stride)].line, 1000)) for i in range(n))
        return out[: self.case_lines]

    def _item(self, scope: Scope, service: str, selector: str, snapshot: dict, finding: str, *,
              status: str = EvidenceStatus.OK, score: float = 0.0,
              anomaly_start: datetime | None = None) -> EvidenceItem:
        return EvidenceItem(kind=self.kind, source=self.source, service=service, query=selector,
                            snapshot=snapshot, finding=_cut(finding), score=score, status=status,
                            explore_url=self._explore(selector, scope), anomaly_start=anomaly_start)

    def _explore(self, selector: str, scope: Scope) -> str:
        base = self._grafana_url if self._grafana_url is not None else getattr(settings, "GRAFANA_URL", "")
        if not base:
            return ""
        pane = grafana_links.loki_pane(selector, scope.baseline_start, scope.window_end)
        return grafana_links.explore_url(base, {"logs": pane})
