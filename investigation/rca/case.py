"""A root-cause *case* and its on-disk loader (the layout of ../shared/datasets/rca/FORMAT.md).

Pure: no Django, no network, no clock. `load_case(path)` raises `CaseError` with one line that names
the file (and line) at fault, so `manage.py rca` and the benchmarks can report it as it is.
"""
from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

METRIC_FILES = ("metrics.csv", "data.csv")  # data.csv: the RCAEval name for the same table


class CaseError(ValueError):
    """A case directory that cannot be read; the message is one line naming the file (and line)."""


@dataclass(frozen=True)
class LogLine:
    time: float
    service: str
    line: str


@dataclass(frozen=True)
class TraceSummary:
    trace_id: str
    time: float
    services: tuple[str, ...]
    error_services: tuple[str, ...]
    origin_service: str | None
    duration_ms: float | None = None


@dataclass
class Case:
    times: np.ndarray  # unix seconds, ascending, fixed step
    series: dict[str, dict[str, np.ndarray]]  # service -> metric -> float array (len(times)), NaN = missing
    detection_time: float
    services: list[str]  # every service (topology ∪ series)
    edges: list[tuple[str, str]] = field(default_factory=list)  # caller -> callee
    logs: list[LogLine] = field(default_factory=list)
    traces: list[TraceSummary] = field(default_factory=list)
    name: str = ""

    @property
    def step(self) -> float:
        if self.times.size < 2:
            return 1.0
        return float(np.median(np.diff(self.times)))


def build_case(*, times, series, detection_time, edges=(), logs=(), traces=(), services=None, name="") -> Case:
    """A `Case` from in-memory data (the live investigation and the tests use this); the service list is
    the union of the topology, the series, the logs and the traces, in first-seen order."""
    times = np.asarray(times, dtype=float)
    series = {s: {m: np.asarray(v, dtype=float) for m, v in ms.items()} for s, ms in series.items()}
    for s, ms in series.items():
        for m, v in ms.items():
            if v.shape != times.shape:
                raise CaseError(f"series {s}_{m} has {v.size} values for {times.size} times")
    edges = [(str(a), str(b)) for a, b in edges]
    seen: dict[str, None] = {}
    for s in list(services or []) + [x for e in edges for x in e] + list(series):
        seen.setdefault(s, None)
    for item in logs:
        seen.setdefault(item.service, None)
    for t in traces:
        for s in t.services:
            seen.setdefault(s, None)
    return Case(times=times, series=series, detection_time=float(detection_time), services=list(seen),
                edges=edges, logs=list(logs), traces=list(traces), name=name)


def _regular_grid(times: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sort, de-duplicate and place rows on a fixed-step grid (gaps become NaN rows)."""
    order = np.argsort(times, kind="stable")
    times, rows = times[order], rows[order]
    keep = np.concatenate([[True], np.diff(times) > 0]) if times.size else np.array([], bool)
    times, rows = times[keep], rows[keep]
    if times.size < 3:
        return times, rows
    diffs = np.diff(times)
    step = float(np.median(diffs))
    if np.all(np.abs(diffs - step) <= 0.01 * step):
        return times, rows
    n = int(round((times[-1] - times[0]) / step)) + 1
    grid = times[0] + step * np.arange(n)
    out = np.full((n, rows.shape[1]), np.nan)
    idx = np.clip(np.round((times - times[0]) / step).astype(int), 0, n - 1)
    out[idx] = rows
    return grid, out


def _read_metrics(path: Path) -> tuple[np.ndarray, dict[str, dict[str, np.ndarray]]]:
    with open(path, newline="") as f:
        reader = csv.reader(f)
        try:
            header = next(reader)
        except StopIteration:
            raise CaseError(f"{path.name}: empty file") from None
        header = [h.strip() for h in header]
        if not header or header[0].lower() not in ("time", "timestamp"):
            raise CaseError(f"{path.name} line 1: bad header, first column must be 'time' (got {header[0]!r})")
        columns: list[tuple[str, str]] = []
        seen = set()
        for i, name in enumerate(header[1:], start=2):
            service, _, metric = name.partition("_")
            if not service or not metric:
                raise CaseError(f"{path.name} line 1: bad header column {i} {name!r}, expected <service>_<metric>")
            if name in seen:
                raise CaseError(f"{path.name} line 1: duplicate column {name!r}")
            seen.add(name)
            columns.append((service, metric))
        if not columns:
            raise CaseError(f"{path.name} line 1: no metric columns")
        times, rows = [], []
        for lineno, row in enumerate(reader, start=2):
            if not row or all(not c.strip() for c in row):
                continue
            if len(row) != len(header):
                raise CaseError(f"{path.name} line {lineno}: {len(row)} cells, header has {len(header)}")
            try:
                t = float(row[0])
            except ValueError:
                raise CaseError(f"{path.name} line {lineno}: time {row[0]!r} is not a number") from None
            values = []
            for j, cell in enumerate(row[1:], start=1):
                cell = cell.strip()
                if not cell or cell.lower() in ("nan", "null", "none"):
                    values.append(math.nan)
                    continue
                try:
                    values.append(float(cell))
                except ValueError:
                    raise CaseError(f"{path.name} line {lineno}: column {header[j]!r} value {cell!r} "
                                    "is not a number") from None
            if not math.isfinite(t):
                raise CaseError(f"{path.name} line {lineno}: time {row[0]!r} is not finite")
            times.append(t)
            rows.append(values)
    if len(times) < 2:
        raise CaseError(f"{path.name}: fewer than two data rows")
    t_arr, r_arr = _regular_grid(np.array(times, float), np.array(rows, float))
    r_arr[~np.isfinite(r_arr)] = np.nan
    series: dict[str, dict[str, np.ndarray]] = {}
    for j, (service, metric) in enumerate(columns):
        series.setdefault(service, {})[metric] = r_arr[:, j].copy()
    return t_arr, series


def _read_inject_time(path: Path) -> float:
    if not path.exists():
        raise CaseError(f"{path.name}: missing in {path.parent}")
    text = path.read_text().strip()
    try:
        value = float(text.split()[0]) if text else math.nan
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise CaseError(f"{path.name} line 1: expected unix seconds, got {text[:40]!r}")
    return value


def _read_topology(path: Path) -> tuple[list[str], list[tuple[str, str]]]:
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise CaseError(f"{path.name} line {e.lineno}: invalid JSON ({e.msg})") from None
    if not isinstance(data, dict):
        raise CaseError(f"{path.name}: expected an object with 'services' and 'edges'")
    services = data.get("services", [])
    edges = data.get("edges", [])
    if not isinstance(services, list) or not all(isinstance(s, str) for s in services):
        raise CaseError(f"{path.name}: 'services' must be a list of names")
    if not isinstance(edges, list) or not all(
            isinstance(e, (list, tuple)) and len(e) == 2 and all(isinstance(x, str) for x in e) for e in edges):
        raise CaseError(f"{path.name}: 'edges' must be a list of [caller, callee] pairs")
    return services, [(a, b) for a, b in edges]


def _read_jsonl(path: Path, required: tuple[str, ...]):
    with open(path) as f:
        for lineno, raw in enumerate(f, start=1):
            if not raw.strip():
                continue
            try:
                obj = json.loads(raw)
            except json.JSONDecodeError as e:
                raise CaseError(f"{path.name} line {lineno}: invalid JSON ({e.msg})") from None
            if not isinstance(obj, dict) or any(k not in obj for k in required):
                raise CaseError(f"{path.name} line {lineno}: expected an object with {', '.join(required)}")
            try:
                t = float(obj["time"])
            except (TypeError, ValueError):
                raise CaseError(f"{path.name} line {lineno}: 'time' is not a number") from None
            yield lineno, t, obj


def load_case(path) -> Case:
    """Read one case directory (metrics.csv or RCAEval's data.csv, inject_time.txt, optional
    topology.json, logs.jsonl, traces.jsonl). Raises `CaseError` naming the file and line at fault."""
    root = Path(path)
    if not root.is_dir():
        raise CaseError(f"{root}: not a case directory")
    metrics = next((root / n for n in METRIC_FILES if (root / n).is_file()), None)
    if metrics is None:
        raise CaseError(f"metrics.csv: missing in {root}")
    times, series = _read_metrics(metrics)
    detection = _read_inject_time(root / "inject_time.txt")
    services, edges = _read_topology(root / "topology.json") if (root / "topology.json").is_file() else ([], [])
    logs: list[LogLine] = []
    if (root / "logs.jsonl").is_file():
        for lineno, t, obj in _read_jsonl(root / "logs.jsonl", ("time", "service", "line")):
            if not isinstance(obj["service"], str) or not isinstance(obj["line"], str):
                raise CaseError(f"logs.jsonl line {lineno}: 'service' and 'line' must be strings")
            logs.append(LogLine(t, obj["service"], obj["line"]))
    traces: list[TraceSummary] = []
    if (root / "traces.jsonl").is_file():
        for lineno, t, obj in _read_jsonl(root / "traces.jsonl", ("time", "services")):
            try:
                dur = obj.get("duration_ms")
                traces.append(TraceSummary(
                    trace_id=str(obj.get("trace_id", lineno)), time=t,
                    services=tuple(str(s) for s in obj["services"]),
                    error_services=tuple(str(s) for s in obj.get("error_services") or ()),
                    origin_service=(str(obj["origin_service"]) if obj.get("origin_service") else None),
                    duration_ms=float(dur) if dur is not None else None))
            except (TypeError, ValueError):
                raise CaseError(f"traces.jsonl line {lineno}: malformed trace summary") from None
    return build_case(times=times, series=series, detection_time=detection, edges=edges, logs=logs,
                      traces=traces, services=services, name=root.name)
